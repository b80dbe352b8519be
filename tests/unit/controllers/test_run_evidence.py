"""Incremental decisions: a run's evidence read chunk by chunk across ticks gives, at every tick, exactly the
decision, statistics and consumed records that reading all of it from nothing gives (the reconcile before
issue 14), whatever the shards, chunk sizes and the order in which chunks appear."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from assay.controllers import run_evidence
from assay.evaluator import sinks
from assay.qualification import decision, evidence, simulate

SCENARIOS = [
    simulate.Scenario(mu=0.5, tie_rate=0.3),
    simulate.Scenario(mu=0.35, tie_rate=0.3),
    simulate.Scenario(mu=0.5, tie_rate=0.3, length_bias=0.3, length_ratio=1.2),
    simulate.Scenario(mu=0.52, tie_rate=0.85),
]


def _records(n: int, scenario: simulate.Scenario, seed: int) -> list[dict[str, Any]]:
    out = []
    for record in simulate.simulate_evidence(n, scenario, seed=seed):
        wire = record.to_dict()
        wire["tokens"] = {"baseline": {"prompt": 100, "completion": 50 + record.seq % 7}, "candidate": None}
        wire["latency_ms"] = {"baseline": 200 + record.seq % 13, "candidate": 150}
        out.append(wire)
    return out


def _chunks(records: list[dict[str, Any]], shards: int, rng: random.Random) -> list[run_evidence.Chunk]:
    """Each shard's records (positions seq % shards) in chunks of random size, as the evaluator writes them."""
    chunks = []
    for shard in range(shards):
        mine = [r for r in records if r["seq"] % shards == shard]
        start, number = 0, 0
        while start < len(mine):
            size = rng.randint(1, 40)
            chunks.append(run_evidence.Chunk(f"run-ev-{shard}-{number:04d}", "1", shard, mine[start : start + size]))
            start, number = start + size, number + 1
    return chunks


def _from_nothing(settings: decision.TestSettings, chunks: list[run_evidence.Chunk], shards: int):
    """The reconcile as it was: every chunk read, the complete prefix fed to a new test until it decides."""
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        by_shard.setdefault(chunk.shard, []).extend(chunk.records)
    for records in by_shard.values():
        records.sort(key=lambda r: r["seq"])
    prefix = sinks.longest_complete_prefix(by_shard, shards)
    test = decision.Qualification(settings)
    verdict = None
    for record in prefix:
        verdict = test.add(evidence.parse_line(json.dumps(record), line_no=record["seq"], source="run"))
        if verdict is not None:
            break
    return test, verdict, prefix[: test.records]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("shards", [1, 3])
def test_incremental_reading_gives_the_same_decision_at_every_tick(scenario, shards):
    settings = decision.TestSettings(max_samples=400)
    for seed in range(3):
        rng = random.Random(seed * 31 + shards)
        chunks = _chunks(_records(430, scenario, seed), shards, rng)
        # Chunks appear per shard in order, the shards interleaved at random (one shard may run ahead).
        queues = {s: [c for c in chunks if c.shard == s] for s in range(shards)}
        cache = run_evidence.EvidenceCache()
        delivered: list[run_evidence.Chunk] = []
        while any(queues.values()):
            for _ in range(rng.randint(1, 6)):
                live = [s for s in queues if queues[s]]
                if live:
                    delivered.append(queues[rng.choice(live)].pop(0))
            listed = {c.name: c.version for c in delivered}
            run, unread = cache.state("uid", settings=settings, shards=shards, source="run", listed=listed)
            by_name = {c.name: c for c in delivered}
            got = run.add(by_name[name] for name in unread)
            test, want, consumed = _from_nothing(settings, delivered, shards)
            assert (got is None) == (want is None)
            if want is not None:
                assert (got.verdict, got.reason, got.message) == (want.verdict, want.reason, want.message)
                assert got.stats == want.stats
            assert run.qualification.stats() == test.stats()
            assert run.qualification.records == test.records
            assert run.consumed == [
                {"control": r.get("control"), "tokens": r.get("tokens"), "latency_ms": r.get("latency_ms")}
                for r in consumed
            ]
            if got is not None:
                break
        final = run.finish()
        again = run.finish()
        assert final == again, "finishing twice (a status write retried) gives the same decision"


def test_each_chunk_is_read_once_and_a_changed_chunk_rebuilds_the_state():
    settings = decision.TestSettings()
    records = _records(60, SCENARIOS[0], 1)
    first = run_evidence.Chunk("run-ev-0-0000", "1", 0, records[:30])
    second = run_evidence.Chunk("run-ev-0-0001", "1", 0, records[30:])
    cache = run_evidence.EvidenceCache()
    run, unread = cache.state("uid", settings=settings, shards=1, source="run", listed={first.name: "1"})
    assert unread == [first.name]
    run.add([first])
    run, unread = cache.state(
        "uid", settings=settings, shards=1, source="run", listed={first.name: "1", second.name: "1"}
    )
    assert unread == [second.name], "only the new chunk is read"
    run.add([second])
    assert run.qualification.records == 60

    rebuilt, unread = cache.state(
        "uid", settings=settings, shards=1, source="run", listed={first.name: "2", second.name: "1"}
    )
    assert rebuilt is not run and unread == [first.name, second.name], "a chunk that changed: read all again"
    rebuilt, unread = cache.state(
        "uid", settings=decision.TestSettings(margin=0.1), shards=1, source="run", listed={first.name: "2"}
    )
    assert rebuilt.settings.margin == 0.1 and unread == [first.name], "other settings: a new test"
    cache.forget("uid")
    assert len(cache) == 0


def test_shard_statuses_are_read_again_only_when_they_change():
    run = run_evidence.RunEvidence(settings=decision.TestSettings(), shards=2, source="run")
    reads: list[str] = []

    def read(name: str) -> dict[str, Any]:
        reads.append(name)
        return {"shard": int(name[-1]), "done": name in done}

    done: set[str] = set()
    listed = [("run-status-0", "5", 0), ("run-status-1", "7", 1)]
    assert run.shard_statuses(listed, read) == {0: {"shard": 0, "done": False}, 1: {"shard": 1, "done": False}}
    assert run.shard_statuses(listed, read)[1] == {"shard": 1, "done": False}
    assert reads == ["run-status-0", "run-status-1"]
    done.add("run-status-1")
    statuses = run.shard_statuses([("run-status-0", "5", 0), ("run-status-1", "8", 1)], read)
    assert statuses[1]["done"] and reads[-1] == "run-status-1" and len(reads) == 3
    assert run.shard_statuses([("run-status-0", "5", 0)], read) == {0: {"shard": 0, "done": False}}


@pytest.mark.parametrize("shards", [1, 3])
def test_a_done_status_read_before_its_last_chunk_does_not_end_the_run(shards):
    """The failure seen in CI: the status ConfigMap, read after the listing, already said done while the last
    chunk (created between the listing and that read) was not read; the run ended on a prefix (297 of 300)."""
    records = _records(300, simulate.Scenario(mu=0.47, tie_rate=0.3), seed=3)
    chunks = _chunks(records, shards, random.Random(5))
    last = max(chunks, key=lambda c: max(r["seq"] for r in c.records))
    run = run_evidence.RunEvidence(settings=decision.TestSettings(), shards=shards, source="run")
    decided = run.add([c for c in chunks if c is not last])
    per_shard = {s: sum(len(c.records) for c in chunks if c.shard == s) for s in range(shards)}
    statuses = {
        s: {"shard": s, "done": True, "written": per_shard[s], "positions": per_shard[s]} for s in range(shards)
    }
    assert decided is None, "this evidence must leave the test undecided for the check to mean anything"
    assert not run.complete(statuses), "done said by the status, but a chunk it counts is not read yet"
    run.add([last])
    assert run.complete(statuses)
    assert not run.complete({s: {**st, "done": s != 0} for s, st in statuses.items()}), "a shard not done"
    assert not run.complete({0: statuses[0]}) or shards == 1, "a shard with no status yet"

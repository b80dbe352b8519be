"""evaluate_shard end to end over real HTTP: the LLM simulator (or a scripted fake) and a FileSink."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
from typing import Any

import pytest
from evaluator_harness import (
    BASELINE,
    CANDIDATE,
    FAST_RETRY,
    JUDGE,
    FakeLLM,
    Reply,
    completion,
    evidence,
    judge_prompt_parts,
    make_spec,
    without_latency,
    world,
    write_jsonl,
)

from assay import httpclient
from assay.evaluator import dataset, errors, pairs, plan, sinks
from assay.evaluator import shard as shard_module
from assay.evaluator.shard import evaluate_shard
from assaylab import simulator

CORE_KEYS = {
    "seq",
    "id",
    "control",
    "agreement",
    "judge",
    "chars",
    "format_ok",
    "control_kind",
    "judge_calls",
    "tokens",
    "latency_ms",
    "replayed_baseline",
    "shard",
}


async def run(
    spec: Any,
    directory: pathlib.Path,
    *,
    shard: int = 0,
    shards: int = 1,
    retry_policy: httpclient.RetryPolicy = FAST_RETRY,
    **kwargs: Any,
) -> Any:
    """evaluate_shard into a FileSink, with retries that back off in milliseconds."""
    return await evaluate_shard(
        spec,
        shard=shard,
        shards=shards,
        sink=sinks.FileSink(directory, shard),
        api_key=None,
        judge_api_key=None,
        retry_policy=retry_policy,
        **kwargs,
    )


async def test_complete_shard_writes_every_position_once_in_order_in_chunks(sim, dataset_path, tmp_path):
    spec = make_spec(sim.base_url, dataset_path)
    result = await run(spec, tmp_path / "ev")
    records = evidence(tmp_path / "ev")
    assert result.done and not result.stopped
    assert [r["seq"] for r in records] == list(range(result.total_positions))
    assert sum(not r["control"] for r in records) == 60
    chunk_files = sorted((tmp_path / "ev").glob("evidence-0-*.jsonl"))
    sizes = [len(p.read_text().splitlines()) for p in chunk_files]
    assert sizes[:-1] == [7] * (len(sizes) - 1) and 0 < sizes[-1] <= 7
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status | {"updated_at": None} == {
        "shard": 0,
        "shards": 1,
        "positions": result.total_positions,
        "total_positions": result.total_positions,
        "written": result.total_positions,
        "done": True,
        "invalid_lines": [],
        "invalid_count": 0,
        "invalid_reasons": {},
        "error": None,
        "error_reason": None,
        "error_permanent": False,
        "updated_at": None,
    }


async def test_evidence_record_core_shape(sim, dataset_path, tmp_path):
    await run(make_spec(sim.base_url, dataset_path), tmp_path / "ev")
    records = evidence(tmp_path / "ev")
    for record in records:
        assert record.keys() >= CORE_KEYS
        assert record["shard"] == 0 and record["replayed_baseline"] is False
        assert record["format_ok"] == {"baseline": None, "candidate": None}  # no format configured
        if record["agreement"] is None:
            assert set(record["judge"]) == {"candidate_first", "baseline_first"}
            assert set(record["judge"].values()) <= {"candidate", "baseline", "tie", "invalid"}
            assert record["judge_calls"] == 2
            assert set(record["tokens"]["judge"]) == {"prompt", "completion"}
        else:
            assert record["judge"] is None and record["judge_calls"] == 0
    pair = next(r for r in records if not r["control"] and r["agreement"] is None)
    assert all(pair["tokens"][side]["completion"] > 0 for side in ("baseline", "candidate"))
    assert all(pair["latency_ms"][side] > 0 for side in ("baseline", "candidate", "judge"))
    assert {r["agreement"] for r in records} >= {None, "exact"}  # equal ideal answers agree exactly


async def test_controls_pit_the_baseline_against_its_degraded_copy_without_a_candidate_call(
    sim, dataset_path, tmp_path
):
    spec = make_spec(sim.base_url, dataset_path, test={"controlShare": 0.3})
    await run(spec, tmp_path / "ev")
    controls = [r for r in evidence(tmp_path / "ev") if r["control"]]
    assert len(controls) >= 10
    assert sim.stats()["models"][CANDIDATE]["requests"] == 60  # one per pair, none for controls
    for control in controls:
        assert control["control_kind"] in plan.CONTROL_KINDS
        assert control["agreement"] is None and control["judge_calls"] == 2
        assert control["tokens"]["candidate"] is None and control["latency_ms"]["candidate"] is None
    truncated = [c for c in controls if c["control_kind"] == "truncated"]
    assert truncated and all(c["chars"]["candidate"] < c["chars"]["baseline"] for c in truncated)
    # The simulated judge tells an intact answer from a degraded one.
    verdicts = [v for c in controls for v in c["judge"].values()]
    assert verdicts.count("baseline") / len(verdicts) > 0.9


async def test_shards_together_cover_the_whole_sequence(sim, dataset_path, tmp_path):
    spec = make_spec(sim.base_url, dataset_path)
    results = [await run(spec, tmp_path / "ev", shard=k, shards=3) for k in range(3)]
    by_shard, statuses = sinks.read_evidence_dir(tmp_path / "ev")
    total = results[0].total_positions
    assert sum(r.positions for r in results) == total
    for k in range(3):
        assert [r["seq"] for r in by_shard[k]] == list(range(k, total, 3))
        assert statuses[k]["done"] and statuses[k]["shards"] == 3
    assert [r["seq"] for r in sinks.longest_complete_prefix(by_shard, 3)] == list(range(total))


async def test_sharded_evidence_equals_single_shard_evidence_except_latency(sim, dataset_path, tmp_path):
    spec = make_spec(sim.base_url, dataset_path)
    await run(spec, tmp_path / "one")
    for k in range(2):
        await run(spec, tmp_path / "two", shard=k, shards=2)
    strip_shard = [{**r, "shard": None} for r in without_latency(evidence(tmp_path / "one"))]
    assert strip_shard == [{**r, "shard": None} for r in without_latency(evidence(tmp_path / "two"))]


async def test_retries_through_429_and_500_give_the_same_evidence_as_a_clean_run(dataset_path, tmp_path):
    flaky = {"rate_limit_rate": 0.15, "retry_after_s": 0.001, "error_rate": 0.1}
    async with simulator.SimulatorServer(world()) as clean_sim:
        await run(make_spec(clean_sim.base_url, dataset_path), tmp_path / "clean")
    config = world(**{BASELINE: flaky, CANDIDATE: flaky, JUDGE: flaky})
    async with simulator.SimulatorServer(config) as flaky_sim:
        # 12 attempts: a call failing every one of them (p = 0.235^12) would end the shard, not test retries.
        patient = dataclasses.replace(FAST_RETRY, max_attempts=12)
        result = await run(make_spec(flaky_sim.base_url, dataset_path), tmp_path / "flaky", retry_policy=patient)
        stats = flaky_sim.stats()["models"]
    assert result.retries > 20
    assert sum(stats[m]["rate_limited"] + stats[m]["errors"] for m in stats) == result.retries
    assert without_latency(evidence(tmp_path / "flaky")) == without_latency(evidence(tmp_path / "clean"))


async def test_resume_after_a_stop_mid_way_has_no_duplicates_and_no_gaps(dataset_path, tmp_path):
    config = world(**{BASELINE: {"latency_ms": 5}, CANDIDATE: {"latency_ms": 5}, JUDGE: {"latency_ms": 5}})
    async with simulator.SimulatorServer(config) as sim:
        spec = make_spec(sim.base_url, dataset_path, execution={"concurrency": 4, "chunkSize": 4})
        await run(spec, tmp_path / "reference")
        stop = asyncio.Event()
        first = asyncio.create_task(run(spec, tmp_path / "ev", stop=stop))
        while not list((tmp_path / "ev").glob("evidence-0-0002.jsonl")):
            await asyncio.sleep(0.005)
        stop.set()
        stopped = await first
        assert stopped.stopped and not stopped.done
        assert 12 <= stopped.written < stopped.positions
        partial = evidence(tmp_path / "ev")
        assert [r["seq"] for r in partial] == list(range(len(partial)))
        resumed = await run(spec, tmp_path / "ev")
    assert resumed.done and resumed.written_before == len(partial)
    assert resumed.written == resumed.positions - len(partial)
    assert without_latency(evidence(tmp_path / "ev")) == without_latency(evidence(tmp_path / "reference"))


async def test_rerunning_a_complete_shard_makes_no_call(sim, dataset_path, tmp_path):
    spec = make_spec(sim.base_url, dataset_path)
    await run(spec, tmp_path / "ev")
    before = sim.stats()
    again = await run(spec, tmp_path / "ev")
    assert again.done and again.written == 0
    assert sim.stats() == before


async def test_replayed_baseline_skips_the_baseline_call(sim, tmp_path):
    records = simulator.make_dataset(20, seed=4)
    for record in records[::2]:
        record["baseline_response"] = "A recorded production answer."
    spec = make_spec(sim.base_url, write_jsonl(tmp_path / "d.jsonl", records), test={"controlShare": 0})
    await run(spec, tmp_path / "ev")
    out = {r["id"]: r for r in evidence(tmp_path / "ev")}
    assert sim.stats()["models"][BASELINE]["requests"] == 10
    for record in records[::2]:
        replayed = out[record["id"]]
        assert replayed["replayed_baseline"] is True
        assert replayed["tokens"]["baseline"] is None and replayed["latency_ms"]["baseline"] is None
        assert replayed["chars"]["baseline"] == len("A recorded production answer.")
    assert all(not out[r["id"]]["replayed_baseline"] for r in records[1::2])


async def test_agreement_saves_both_judge_calls(tmp_path):
    config = world(**{BASELINE: {"quality": 1.0}, CANDIDATE: {"quality": 1.0}})
    async with simulator.SimulatorServer(config) as sim:
        spec = make_spec(sim.base_url, write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(30, seed=1)))
        result = await run(
            spec.model_copy(update={"test": spec.test.model_copy(update={"control_share": 0})}), tmp_path / "ev"
        )
        assert sim.stats()["models"][JUDGE]["requests"] == 0
    assert result.judge_calls == 0 and result.judge_calls_saved == 60
    assert {r["agreement"] for r in evidence(tmp_path / "ev")} == {"exact"}


async def test_always_unparsable_judge_is_asked_twice_per_order_then_invalid(dataset_path, tmp_path):
    async with simulator.SimulatorServer(world(**{JUDGE: {"invalid_rate": 1.0}})) as sim:
        await run(make_spec(sim.base_url, dataset_path), tmp_path / "ev")
    judged = [r for r in evidence(tmp_path / "ev") if r["agreement"] is None]
    assert judged
    for record in judged:
        assert record["judge"] == {"candidate_first": "invalid", "baseline_first": "invalid"}
        assert record["judge_calls"] == 4


def one_pair_dataset(tmp_path: pathlib.Path, **fields: Any) -> pathlib.Path:
    record = {"id": "only", "messages": [{"role": "user", "content": "Which is better?"}], **fields}
    return write_jsonl(tmp_path / "one.jsonl", [record])


async def test_unparsable_verdict_is_retried_once_and_the_retry_counts(tmp_path):
    judge_replies: list[str] = []

    def respond(body: dict[str, Any]) -> Reply:
        if body["model"] != JUDGE:
            return completion("short answer" if body["model"] == CANDIDATE else "a longer baseline answer")
        parts = judge_prompt_parts(body)
        first_ask = not any(r == parts.response_a for r in judge_replies)
        judge_replies.append(parts.response_a)
        if first_ask:
            return completion("I cannot decide.")
        return completion(json.dumps({"verdict": "A" if parts.response_a == "short answer" else "B"}))

    async with FakeLLM(respond) as fake:
        spec = make_spec(fake.base_url, one_pair_dataset(tmp_path), test={"controlShare": 0})
        await run(spec, tmp_path / "ev")
    [record] = evidence(tmp_path / "ev")
    assert record["judge"] == {"candidate_first": "candidate", "baseline_first": "candidate"}
    assert record["judge_calls"] == 4
    assert record["tokens"]["judge"] == {"prompt": 40, "completion": 20}


async def test_system_prompts_are_prepended_and_the_judge_sees_neither(tmp_path):
    def respond(body: dict[str, Any]) -> Reply:
        return completion(json.dumps({"verdict": "tie"}) if body["model"] == JUDGE else f"answer of {body['model']}")

    async with FakeLLM(respond) as fake:
        spec = make_spec(
            fake.base_url,
            one_pair_dataset(tmp_path, reference="the reference"),
            test={"controlShare": 0},
            baseline={"systemPrompt": "Baseline persona."},
            candidate={"systemPrompt": "Cheap persona."},
            judge={"rubric": "Prefer correct answers."},
        )
        await run(spec, tmp_path / "ev")
    [baseline_call] = fake.calls_to(BASELINE)
    [candidate_call] = fake.calls_to(CANDIDATE)
    assert baseline_call["messages"][0] == {"role": "system", "content": "Baseline persona."}
    assert candidate_call["messages"][0] == {"role": "system", "content": "Cheap persona."}
    assert baseline_call["messages"][1:] == [{"role": "user", "content": "Which is better?"}]
    judge_calls = fake.calls_to(JUDGE)
    shown = [(judge_prompt_parts(c).response_a, judge_prompt_parts(c).response_b) for c in judge_calls]
    assert sorted(shown) == sorted(
        [(f"answer of {CANDIDATE}", f"answer of {BASELINE}"), (f"answer of {BASELINE}", f"answer of {CANDIDATE}")]
    )
    for call in judge_calls:
        text = json.dumps(call["messages"])
        assert "Prefer correct answers." in text and "the reference" in text
        assert "persona" not in text and BASELINE not in text.replace(f"answer of {BASELINE}", "")


async def test_both_answers_are_checked_against_the_configured_format(tmp_path):
    def respond(body: dict[str, Any]) -> Reply:
        answers = {BASELINE: '{"label": "spam"}', CANDIDATE: "label: spam", JUDGE: json.dumps({"verdict": "B"})}
        return completion(answers[body["model"]])

    async with FakeLLM(respond) as fake:
        spec = make_spec(fake.base_url, one_pair_dataset(tmp_path), test={"controlShare": 0}, format={"type": "JSON"})
        await run(spec, tmp_path / "ev")
    [record] = evidence(tmp_path / "ev")
    assert record["format_ok"] == {"baseline": True, "candidate": False}
    assert record["judge"] == {"candidate_first": "baseline", "baseline_first": "candidate"}


@pytest.mark.parametrize("concurrency", [5, 40])
async def test_calls_reach_but_never_exceed_the_configured_concurrency(tmp_path, concurrency):
    def respond(body: dict[str, Any]) -> Reply:
        return completion(json.dumps({"verdict": "A"}) if body["model"] == JUDGE else f"{body['model']} says hi")

    async with FakeLLM(respond, delay=0.01) as fake:
        path = write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(40, seed=2))
        spec = make_spec(fake.base_url, path, execution={"concurrency": concurrency})
        await run(spec, tmp_path / "ev")
    assert fake.peak == concurrency


async def test_api_keys_are_sent_as_bearer_tokens_to_their_endpoints(tmp_path):
    def respond(body: dict[str, Any]) -> Reply:
        return completion(json.dumps({"verdict": "A"}) if body["model"] == JUDGE else f"{body['model']} says hi")

    async with FakeLLM(respond) as models, FakeLLM(respond) as judges:
        spec = make_spec(
            models.base_url,
            one_pair_dataset(tmp_path),
            test={"controlShare": 0},
            judge={"endpoint": {"url": judges.base_url}},
        )
        await evaluate_shard(
            spec,
            shard=0,
            shards=1,
            sink=sinks.FileSink(tmp_path / "ev", 0),
            api_key="model-key",
            judge_api_key="judge-key",
        )
    assert {h["Authorization"] for h in models.headers} == {"Bearer model-key"}
    assert {h["Authorization"] for h in judges.headers} == {"Bearer judge-key"}
    assert {r["model"] for r in judges.requests} == {JUDGE}


async def test_judge_401_is_a_permanent_error_recorded_in_the_shard_status(dataset_path, tmp_path):
    def respond(body: dict[str, Any]) -> Reply:
        if body["model"] == JUDGE:
            return 401, {"error": {"message": "bad key"}}
        return completion(f"{body['model']} says hi")

    async with FakeLLM(respond) as fake:
        with pytest.raises(errors.CallRejected, match="HTTP 401") as caught:
            await run(make_spec(fake.base_url, dataset_path), tmp_path / "ev")
    assert caught.value.exit_code == errors.EXIT_PERMANENT
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status["error_reason"] == "JudgeUnauthorized" and "HTTP 401" in status["error"]
    assert not status["done"]


async def test_a_call_failing_every_attempt_is_transient_and_keeps_the_completed_prefix(tmp_path):
    records = simulator.make_dataset(30, seed=8)
    doomed = records[17]["messages"][0]["content"]

    def respond(body: dict[str, Any]) -> Reply:
        if body["model"] == JUDGE:
            return completion(json.dumps({"verdict": "tie"}))
        if body["messages"][-1]["content"] == doomed:
            return 503, {"error": {"message": "overloaded"}}
        return completion(f"{body['model']} answer")

    async with FakeLLM(respond) as fake:
        path = write_jsonl(tmp_path / "d.jsonl", records)
        spec = make_spec(fake.base_url, path, test={"controlShare": 0})
        with pytest.raises(errors.ModelCallFailed, match=r"record 'sim-8-00017'.*after 6 attempts") as caught:
            await run(spec, tmp_path / "ev")
    assert caught.value.exit_code == errors.EXIT_TRANSIENT
    written = evidence(tmp_path / "ev")
    sequence = plan.build_plan(dataset.parse_jsonl(path.read_text()).records, seed=5, control_share=0, max_samples=1200)
    failed_at = next(s.seq for s in sequence if s.record.id == "sim-8-00017")
    assert [r["seq"] for r in written] == list(range(len(written)))
    assert len(written) <= failed_at
    assert all(r["id"] != "sim-8-00017" for r in written)
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status["error_reason"] == "ModelCallFailed" and status["written"] == len(written)
    assert status["error_permanent"] is False, "the Job retries the pod and the shard resumes"


async def test_invalid_lines_are_skipped_and_reported(sim, tmp_path):
    lines: list[Any] = simulator.make_dataset(10, seed=1)
    lines.insert(3, "{broken")
    lines.insert(7, {"id": "no-messages"})
    spec = make_spec(sim.base_url, write_jsonl(tmp_path / "d.jsonl", lines))
    result = await run(spec, tmp_path / "ev")
    assert result.invalid_lines == [4, 8]
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status["invalid_lines"] == [4, 8] and status["invalid_count"] == 2
    assert status["invalid_reasons"]["8"] == "'messages' must be a non-empty list"
    assert sum(not r["control"] for r in evidence(tmp_path / "ev")) == 10


async def test_invalid_lines_with_fail_stop_the_run_before_any_call(sim, tmp_path):
    lines: list[Any] = [*simulator.make_dataset(5, seed=1), "{broken"]
    spec = make_spec(sim.base_url, write_jsonl(tmp_path / "d.jsonl", lines), dataset={"onInvalidLine": "Fail"})
    with pytest.raises(errors.InvalidDatasetError, match="line 6: not valid JSON") as caught:
        await run(spec, tmp_path / "ev")
    assert caught.value.exit_code == errors.EXIT_PERMANENT
    assert sum(m["requests"] for m in sim.stats()["models"].values()) == 0
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status["error_reason"] == "InvalidDatasetLines" and status["invalid_lines"] == [6]
    assert status["error_permanent"] is True


async def test_a_shard_without_positions_completes_at_once(sim, tmp_path):
    spec = make_spec(
        sim.base_url, write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(2, seed=1)), test={"controlShare": 0}
    )
    result = await run(spec, tmp_path / "ev", shard=4, shards=5)
    assert result.done and result.positions == 0


async def test_a_window_committed_before_the_next_wake_does_not_end_the_shard():
    """Slots that all finish while the committer writes leave nothing pending: the pipeline launches the
    next window rather than reading an empty window as a stop (fast models ended shards early this way)."""

    class Instant:
        async def evaluate(self, slot: int) -> dict[str, Any]:
            return {"seq": slot}

    class SlowCommitter:
        def __init__(self) -> None:
            self.committed: list[int] = []

        async def add(self, record: dict[str, Any]) -> None:
            await asyncio.sleep(0.001)  # a chunk write: every launched slot completes meanwhile
            self.committed.append(record["seq"])

        async def flush(self) -> None:
            return None

    committer = SlowCommitter()
    stopped = await shard_module._pipeline(
        list(range(25)),
        Instant(),
        committer,
        window=2,
        stop=asyncio.Event(),  # type: ignore[arg-type]
    )
    assert not stopped
    assert committer.committed == list(range(25))


def test_a_prompt_merges_into_the_apps_system_message_as_litellm_sends_it():
    user = {"role": "user", "content": "Hi"}
    assert pairs.apply_system_prompt([user], "Be brief. ") == [{"role": "system", "content": "Be brief. "}, user]
    app = {"role": "system", "content": "You are the support bot."}
    assert pairs.apply_system_prompt([app, user], " Be brief.\n") == [
        {"role": "system", "content": "Be brief.\n\nYou are the support bot."},
        user,
    ]
    parts = {"role": "system", "content": [{"type": "text", "text": "App."}]}
    assert pairs.apply_system_prompt([parts, user], "Be brief.")[0]["content"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "App."},
    ]
    assert pairs.apply_system_prompt([app, user], None) == [app, user]
    assert app == {"role": "system", "content": "You are the support bot."}  # the input is not changed

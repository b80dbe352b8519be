"""A running QualificationRun's evidence, read incrementally: each tick reads only the evidence chunks it has not
read yet and feeds only the new records of the complete prefix to the test, whose state is kept between ticks.

Evidence chunks are write-once ConfigMaps (`<run>-ev-<shard>-<chunk>`, created once; a rewrite is refused by
the evaluator), so a chunk read once never needs reading again; shard status ConfigMaps change and are read
again when their resourceVersion does. A tick lists the run's ConfigMaps as metadata only (names, labels,
resourceVersions), then GETs the new ones.

The decision is the one the whole evidence gives (`decision.Qualification` consumes records one at a time in
seq order and does not depend on how they were batched): the state is rebuilt from nothing whenever what was
read can no longer be trusted to be a prefix of the same evidence (a chunk already read disappeared or changed,
or the test settings changed).

What is kept per running run, and why: the names and resourceVersions of the chunks read (to read each once),
the records read but not yet consumed (positions beyond the complete prefix: another shard is behind), the
test's state (running sums and bounds, O(1) in the records except the length guardrail's per-pair lengths and
the fingerprints it compares), and for each consumed record the three fields the cost summary needs (control,
tokens, latency). Decided runs are forgotten.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from assay.qualification import decision, evidence


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One evidence ConfigMap as read: its name, resourceVersion, shard and decoded records."""

    name: str
    version: str
    shard: int
    records: list[dict[str, Any]]


@dataclasses.dataclass
class RunEvidence:
    """The incremental state of one run (see the module docstring)."""

    settings: decision.TestSettings
    shards: int
    source: str
    qualification: decision.Qualification = dataclasses.field(init=False)
    read: dict[str, str] = dataclasses.field(default_factory=dict)
    waiting: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    consumed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    next_seq: int = 0
    statuses: dict[str, tuple[str, int, dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.qualification = decision.Qualification(self.settings)

    def unread(self, listed: Mapping[str, str]) -> list[str] | None:
        """Of the evidence chunks listed (name -> resourceVersion), the names not read yet; None when a chunk
        already read is gone or changed (the state must be rebuilt)."""
        for name, version in self.read.items():
            if listed.get(name) != version:
                return None
        return sorted(name for name in listed if name not in self.read)

    def add(self, chunks: Iterable[Chunk]) -> decision.Decision | None:
        """Take newly read chunks, feed the records that extend the complete prefix, and return the decision
        once there is one (it stays the same afterwards: nothing more is fed)."""
        for chunk in chunks:
            self.read[chunk.name] = chunk.version
            if not 0 <= chunk.shard < self.shards:
                continue
            for record in chunk.records:
                seq = int(record["seq"])
                if seq >= self.next_seq:
                    self.waiting.setdefault(seq, record)  # a position written twice counts once
        test = self.qualification
        while test.decision is None and self.next_seq in self.waiting:
            record = self.waiting.pop(self.next_seq)
            test.add(evidence.parse_line(json.dumps(record), line_no=record["seq"], source=self.source))
            self.consumed.append(
                {
                    "control": record.get("control"),
                    "tokens": record.get("tokens"),
                    "latency_ms": record.get("latency_ms"),
                }
            )
            self.next_seq += 1
        if test.decision is not None:
            self.waiting.clear()
        return test.decision

    def shard_statuses(
        self, listed: Iterable[tuple[str, str, int]], read: Callable[[str], dict[str, Any] | None]
    ) -> dict[int, dict[str, Any]]:
        """The shards' statuses by shard index, from the listed status ConfigMaps (name, resourceVersion, shard),
        reading again only those whose resourceVersion changed."""
        present = set()
        for name, version, shard in listed:
            present.add(name)
            if self.statuses.get(name, ("",))[0] != version:
                found = read(name)
                if found is not None:
                    self.statuses[name] = (version, shard, found)
        for name in set(self.statuses) - present:
            del self.statuses[name]
        return {int(st.get("shard", shard)): st for _, shard, st in self.statuses.values()}

    def complete(self, statuses: Mapping[int, Mapping[str, Any]]) -> bool:
        """Every shard says it is done and every record the shards say they wrote has been read.

        A shard status is read after the listing that named the evidence chunks, so it can already say done
        while a chunk written in between is not read yet; ending the run then would decide on a prefix."""
        if len(statuses) < self.shards or not all(st.get("done") for st in statuses.values()):
            return False
        written = sum(int(st.get("written") or 0) for st in statuses.values())
        return self.next_seq + len(self.waiting) >= written

    def finish(self) -> decision.Decision:
        """The evidence ended before the test decided (or it had decided): the final decision, once."""
        return self.qualification.decision or self.qualification.finish()


class EvidenceCache:
    """RunEvidence per run uid, for the runs still deciding (thread-safe; callers hold the run's lock)."""

    def __init__(self) -> None:
        self._runs: dict[str, RunEvidence] = {}
        self._lock = threading.Lock()

    def state(
        self, uid: str, *, settings: decision.TestSettings, shards: int, source: str, listed: Mapping[str, str]
    ) -> tuple[RunEvidence, list[str]]:
        """The run's state and the chunk names to read now (all of them when the state was rebuilt)."""
        with self._lock:
            run = self._runs.get(uid)
            unread = None
            if run is not None and run.settings == settings and run.shards == shards:
                unread = run.unread(listed)
            if run is None or unread is None:
                run = RunEvidence(settings=settings, shards=shards, source=source)
                self._runs[uid] = run
                unread = sorted(listed)
            return run, unread

    def forget(self, uid: str) -> None:
        with self._lock:
            self._runs.pop(uid, None)

    def __len__(self) -> int:
        return len(self._runs)

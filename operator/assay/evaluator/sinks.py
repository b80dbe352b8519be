"""Where evidence goes: the EvidenceSink protocol, the local-file sink, and reading evidence back.

A sink receives a shard's records in chunks of consecutive positions, in position order, and the shard's
status. Each chunk is written atomically and never rewritten: a chunk that already exists (written by a
previous attempt that died before it knew) is skipped. `existing_max_seq()` tells a restarted shard where
to resume. The ConfigMap sink, for the cluster, is in assay.evaluator.kube.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from assay.evaluator import errors


class EvidenceSink(Protocol):
    """Stores one shard's evidence chunks and status."""

    def existing_max_seq(self) -> int | None:
        """The highest position this shard has already written, or None when nothing is written."""
        ...

    def write_chunk(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Store the next chunk: consecutive positions of this shard, in order, atomically."""
        ...

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Create or replace the shard's status."""
        ...


def encode_chunk(records: Iterable[Mapping[str, Any]]) -> str:
    """JSON Lines, one record a line, compact, ending with a newline."""
    return "".join(json.dumps(r, separators=(",", ":"), sort_keys=False) + "\n" for r in records)


def decode_chunk(text: str, *, source: str) -> list[dict[str, Any]]:
    """The records of a chunk; EvidenceStoreError naming `source` if a line is not a record."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.EvidenceStoreError(
                f"{source} line {number}: not JSON ({exc.msg}); delete the chunk to re-evaluate it",
                reason="CorruptEvidence",
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
            raise errors.EvidenceStoreError(
                f"{source} line {number}: not an evidence record; delete the chunk to re-evaluate it",
                reason="CorruptEvidence",
            )
        records.append(record)
    return records


def check_rewrite(existing: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]], *, source: str) -> None:
    """A chunk name already taken must hold the same positions we were about to write, else resuming went
    wrong (two pods of one shard racing from different points): fail transiently and resume again."""
    if [r["seq"] for r in existing] != [r["seq"] for r in records]:
        raise errors.EvidenceStoreError(
            f"{source} already exists with other positions; the shard restarts and resumes after it",
            reason="ChunkConflict",
        )


def longest_complete_prefix(
    records_by_shard: Mapping[int, Iterable[Mapping[str, Any]]], shards: int
) -> list[dict[str, Any]]:
    """The records with positions 0..n-1, all present, in order: what the sequential test may consume.

    Only shards 0..shards-1 count; a position written twice (it should not be) counts once.
    """
    by_seq: dict[int, dict[str, Any]] = {}
    for shard in range(shards):
        for record in records_by_shard.get(shard, ()):
            by_seq.setdefault(int(record["seq"]), dict(record))
    prefix: list[dict[str, Any]] = []
    while len(prefix) in by_seq:
        prefix.append(by_seq[len(prefix)])
    return prefix


_CHUNK_FILE = re.compile(r"^evidence-(\d+)-(\d{4,})\.jsonl$")
_STATUS_FILE = re.compile(r"^shard-(\d+)\.json$")


class FileSink:
    """Evidence as local files: `evidence-<shard>-<chunk>.jsonl` and `shard-<shard>.json` in `directory`.

    For offline runs and tests. A chunk file appears atomically with its full content (written to a
    temporary file, then hard-linked into place, which fails if the name exists).
    """

    def __init__(self, directory: str | os.PathLike[str], shard: int) -> None:
        self.directory = pathlib.Path(directory)
        self.shard = shard
        self.directory.mkdir(parents=True, exist_ok=True)
        self._next_chunk: int | None = None

    def _chunks(self) -> list[tuple[int, pathlib.Path]]:
        found = []
        for path in self.directory.iterdir():
            match = _CHUNK_FILE.match(path.name)
            if match and int(match.group(1)) == self.shard:
                found.append((int(match.group(2)), path))
        return sorted(found)

    def existing_max_seq(self) -> int | None:
        chunks = self._chunks()
        self._next_chunk = chunks[-1][0] + 1 if chunks else 0
        seqs = [r["seq"] for _, path in chunks for r in decode_chunk(path.read_text(), source=str(path))]
        return max(seqs, default=None)

    def write_chunk(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self._next_chunk is None:
            self.existing_max_seq()
        assert self._next_chunk is not None
        path = self.directory / f"evidence-{self.shard}-{self._next_chunk:04d}.jsonl"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(encode_chunk(records))
        try:
            os.link(temporary, path)
        except FileExistsError:
            # Written by an earlier attempt that did not live to know it.
            check_rewrite(decode_chunk(path.read_text(), source=str(path)), records, source=str(path))
        finally:
            temporary.unlink()
        self._next_chunk += 1

    def write_status(self, status: Mapping[str, Any]) -> None:
        path = self.directory / f"shard-{self.shard}.json"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(status, indent=1) + "\n")
        os.replace(temporary, path)


def read_evidence_dir(
    directory: str | os.PathLike[str],
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, dict[str, Any]]]:
    """Every shard's records (sorted by seq) and statuses from a FileSink directory."""
    records: dict[int, list[dict[str, Any]]] = {}
    statuses: dict[int, dict[str, Any]] = {}
    root = pathlib.Path(directory)
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(root.iterdir()):
            if match := _CHUNK_FILE.match(path.name):
                records.setdefault(int(match.group(1)), []).extend(decode_chunk(path.read_text(), source=str(path)))
            elif match := _STATUS_FILE.match(path.name):
                statuses[int(match.group(1))] = json.loads(path.read_text())
    for shard_records in records.values():
        shard_records.sort(key=lambda r: r["seq"])
    return records, statuses

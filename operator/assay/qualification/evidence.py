"""Evidence: one JSON line per evaluated pair, in the pre-registered evaluation order.

A line looks like this (docs/evidence.md is the full description)::

    {"seq": 0, "id": "t-0001", "control": false, "agreement": null,
     "judge": {"candidate_first": "candidate", "baseline_first": "tie"},
     "chars": {"baseline": 812, "candidate": 790},
     "format_ok": {"baseline": true, "candidate": true}}

`seq`, `id`, `control` and `agreement` are required; `judge` is required unless the answers agreed; `chars`,
`format_ok` and `judge_calls` are optional. Any other field (models, tokens, latencies, cost) is kept as is
in `EvidenceRecord.extra`. A record that carries a `score` must carry the score its verdicts give.

The score of a pair is the mean over the two presentation orders of candidate 1, tie 0.5, baseline 0 and
invalid 0 (an unreadable verdict counts against the candidate, never as a silent tie); an agreed pair scores
0.5 without a judge call. So a score is one of 0, 0.25, 0.5, 0.75 and 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from assay.qualification import judge

Agreement = Literal["exact", "normalized", "json", "numeric"]

AGREEMENT_CHECKS: tuple[str, ...] = get_args(Agreement)
WINNERS: tuple[str, ...] = get_args(judge.Winner)
SCORES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)

# Points for the candidate in one presentation order.
POINTS: Mapping[str, float] = {"candidate": 1.0, "tie": 0.5, "baseline": 0.0, "invalid": 0.0}

_KNOWN_FIELDS = frozenset(
    {"seq", "id", "control", "agreement", "judge", "chars", "format_ok", "judge_calls", "fingerprint"}
)


class EvidenceError(ValueError):
    """A malformed evidence line: `source` and `line_no` say where, `message` says what is wrong."""

    def __init__(self, source: str, line_no: int | None, message: str) -> None:
        self.source = source
        self.line_no = line_no
        self.message = message
        where = source if line_no is None else f"{source}:{line_no}"
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True, slots=True)
class JudgeVerdicts:
    """The winner the judge named in each presentation order, already de-anonymized."""

    candidate_first: judge.Winner
    baseline_first: judge.Winner

    @property
    def consistent(self) -> bool:
        """Both orders named the same winner (an invalid verdict confirms nothing, so it is inconsistent)."""
        return self.candidate_first == self.baseline_first and self.candidate_first != "invalid"


@dataclasses.dataclass(frozen=True, slots=True)
class Chars:
    """Answer lengths in characters; None where not measured."""

    baseline: int | None = None
    candidate: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FormatChecks:
    """Whether each answer passed the route's format check; None where not checked."""

    baseline: bool | None = None
    candidate: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Fingerprints:
    """64-bit similarity fingerprints of each answer (16 hex digits, `assay.qualification.fingerprint`)."""

    baseline: str | None = None
    candidate: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One evaluated pair. `extra` holds every field this module does not interpret, unchanged."""

    seq: int
    id: str
    control: bool = False
    agreement: Agreement | None = None
    judge: JudgeVerdicts | None = None
    chars: Chars | None = None
    format_ok: FormatChecks | None = None
    judge_calls: int | None = None
    fingerprint: Fingerprints | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record in its JSON Lines shape (the inverse of `parse_line`)."""
        out: dict[str, Any] = {"seq": self.seq, "id": self.id, "control": self.control, "agreement": self.agreement}
        out["judge"] = None if self.judge is None else dataclasses.asdict(self.judge)
        if self.chars is not None:
            out["chars"] = dataclasses.asdict(self.chars)
        if self.format_ok is not None:
            out["format_ok"] = dataclasses.asdict(self.format_ok)
        if self.judge_calls is not None:
            out["judge_calls"] = self.judge_calls
        if self.fingerprint is not None:
            out["fingerprint"] = dataclasses.asdict(self.fingerprint)
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        """One JSON line, without the newline."""
        return json.dumps(self.to_dict(), separators=(", ", ": "))


def score(record: EvidenceRecord | Mapping[str, Any]) -> float:
    """The candidate's score for this pair: 0.5 when the answers agreed, else the mean over both orders.

    Takes a record, or its JSON object (checked first).
    """
    if not isinstance(record, EvidenceRecord):
        record = from_dict(record)
    if record.agreement is not None:
        return 0.5
    verdicts = record.judge
    if verdicts is None:
        raise ValueError(f"record seq {record.seq} has neither an agreement nor judge verdicts")
    return (POINTS[verdicts.candidate_first] + POINTS[verdicts.baseline_first]) / 2


def _fail(source: str, line_no: int | None, message: str) -> EvidenceError:
    return EvidenceError(source, line_no, message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sides(
    obj: Mapping[str, Any], name: str, check: type, *, source: str, line_no: int | None
) -> tuple[Any, Any] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(source, line_no, f'field "{name}" must be an object with "baseline" and "candidate"')
    pair = []
    for side in ("baseline", "candidate"):
        item = value.get(side)
        ok = item is None or (_is_int(item) and item >= 0 if check is int else isinstance(item, bool))
        if not ok:
            wanted = "a non-negative integer" if check is int else "true, false or null"
            raise _fail(source, line_no, f'field "{name}.{side}" must be {wanted}, got {json.dumps(item)}')
        pair.append(item)
    return pair[0], pair[1]


def parse_line(text: str, *, line_no: int | None = None, source: str = "<evidence>") -> EvidenceRecord:
    """One evidence record from one JSON line; EvidenceError names the line and the field at fault."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise _fail(source, line_no, f"not valid JSON ({err.msg} at column {err.colno})") from None
    return from_dict(obj, line_no=line_no, source=source)


def from_dict(obj: object, *, line_no: int | None = None, source: str = "<evidence>") -> EvidenceRecord:
    """One evidence record from its decoded JSON object, checked as `parse_line` checks a line."""
    if not isinstance(obj, dict):
        raise _fail(source, line_no, "a record must be a JSON object")
    for name in ("seq", "id", "control", "agreement"):
        if name not in obj:
            raise _fail(source, line_no, f'missing field "{name}"')
    seq, record_id, control, agreement = obj["seq"], obj["id"], obj["control"], obj["agreement"]
    if not _is_int(seq) or seq < 0:
        raise _fail(source, line_no, f'field "seq" must be a non-negative integer, got {json.dumps(seq)}')
    if not isinstance(record_id, str) or not record_id:
        raise _fail(source, line_no, f'field "id" must be a non-empty string, got {json.dumps(record_id)}')
    if not isinstance(control, bool):
        raise _fail(source, line_no, f'field "control" must be true or false, got {json.dumps(control)}')
    if agreement is not None and agreement not in AGREEMENT_CHECKS:
        allowed = ", ".join(AGREEMENT_CHECKS)
        raise _fail(source, line_no, f'field "agreement" must be null or one of {allowed}, got {json.dumps(agreement)}')

    verdicts = _parse_judge(obj.get("judge"), agreed=agreement is not None, source=source, line_no=line_no)
    chars = _sides(obj, "chars", int, source=source, line_no=line_no)
    formats = _sides(obj, "format_ok", bool, source=source, line_no=line_no)
    judge_calls = obj.get("judge_calls")
    if judge_calls is not None and (not _is_int(judge_calls) or judge_calls < 0):
        raise _fail(
            source, line_no, f'field "judge_calls" must be a non-negative integer, got {json.dumps(judge_calls)}'
        )

    prints = _fingerprints(obj.get("fingerprint"), source=source, line_no=line_no)
    record = EvidenceRecord(
        seq=seq,
        id=record_id,
        control=control,
        agreement=agreement,
        judge=verdicts,
        chars=None if chars is None else Chars(*chars),
        format_ok=None if formats is None else FormatChecks(*formats),
        judge_calls=judge_calls,
        fingerprint=prints,
        extra={k: v for k, v in obj.items() if k not in _KNOWN_FIELDS},
    )
    if "score" in obj:
        claimed, actual = obj["score"], score(record)
        if isinstance(claimed, bool) or not isinstance(claimed, int | float) or claimed not in SCORES:
            raise _fail(
                source, line_no, f'field "score" must be one of 0, 0.25, 0.5, 0.75, 1, got {json.dumps(claimed)}'
            )
        if claimed != actual:
            raise _fail(source, line_no, f'field "score" is {claimed} but the verdicts give {actual}')
    return record


def _fingerprints(value: object, *, source: str, line_no: int | None) -> Fingerprints | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(source, line_no, 'field "fingerprint" must be an object with "baseline" and "candidate"')
    sides = []
    for side in ("baseline", "candidate"):
        item = value.get(side)
        if item is not None and not (isinstance(item, str) and len(item) == 16 and _is_hex(item)):
            raise _fail(
                source, line_no, f'field "fingerprint.{side}" must be 16 hex digits or null, got {json.dumps(item)}'
            )
        sides.append(item)
    return Fingerprints(*sides)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _parse_judge(value: object, *, agreed: bool, source: str, line_no: int | None) -> JudgeVerdicts | None:
    if value is None or (agreed and isinstance(value, dict) and not any(v is not None for v in value.values())):
        if agreed:
            return None
        raise _fail(source, line_no, 'missing field "judge": a pair without agreement needs both verdicts')
    if not isinstance(value, dict):
        raise _fail(source, line_no, 'field "judge" must be an object with "candidate_first" and "baseline_first"')
    if agreed:
        raise _fail(source, line_no, 'an agreed pair carries no judge verdicts: set "judge" to null')
    found = []
    for order in ("candidate_first", "baseline_first"):
        if order not in value:
            raise _fail(source, line_no, f'missing field "judge.{order}"')
        if value[order] not in WINNERS:
            allowed = ", ".join(WINNERS)
            raise _fail(
                source, line_no, f'field "judge.{order}" must be one of {allowed}, got {json.dumps(value[order])}'
            )
        found.append(value[order])
    return JudgeVerdicts(candidate_first=found[0], baseline_first=found[1])


def read_evidence(
    path_or_lines: str | os.PathLike[str] | Iterable[str], *, source: str | None = None
) -> list[EvidenceRecord]:
    """Every record of an evidence file (a path) or of lines, checked; blank lines are skipped.

    Raises EvidenceError naming the line for a malformed record and for a `seq` that does not increase
    (evidence must be in the pre-registered evaluation order), and OSError when the file cannot be read.
    """
    if isinstance(path_or_lines, str | os.PathLike):
        name = source or os.fspath(path_or_lines)
        with open(path_or_lines, encoding="utf-8") as handle:
            return _read(handle, name)
    return _read(path_or_lines, source or "<evidence>")


def _read(lines: Iterable[str], source: str) -> list[EvidenceRecord]:
    records: list[EvidenceRecord] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = parse_line(line, line_no=line_no, source=source)
        if records and record.seq <= records[-1].seq:
            raise _fail(
                source, line_no, f"seq {record.seq} after seq {records[-1].seq}: evidence must be in evaluation order"
            )
        records.append(record)
    return records

"""The evidence format: what a line may hold, its score, and errors that name the line."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from assay.qualification import evidence


def line(**fields: Any) -> str:
    record: dict[str, Any] = {
        "seq": 0,
        "id": "t-0001",
        "control": False,
        "agreement": None,
        "judge": {"candidate_first": "candidate", "baseline_first": "tie"},
        "chars": {"baseline": 812, "candidate": 790},
        "format_ok": {"baseline": True, "candidate": True},
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(
    ("candidate_first", "baseline_first", "expected"),
    [
        ("candidate", "candidate", 1.0),
        ("candidate", "tie", 0.75),
        ("tie", "tie", 0.5),
        ("candidate", "baseline", 0.5),
        ("baseline", "tie", 0.25),
        ("baseline", "baseline", 0.0),
        ("invalid", "candidate", 0.5),
        ("invalid", "tie", 0.25),
        ("invalid", "invalid", 0.0),
    ],
)
def test_score_is_the_mean_of_both_orders_with_invalid_counting_as_a_loss(candidate_first, baseline_first, expected):
    record = evidence.parse_line(line(judge={"candidate_first": candidate_first, "baseline_first": baseline_first}))
    assert evidence.score(record) == expected


def test_agreed_pair_scores_one_half_without_judge_verdicts():
    for judge in (None, ..., {"candidate_first": None, "baseline_first": None}):
        record = evidence.parse_line(line(agreement="json", judge=judge, chars=...))
        assert evidence.score(record) == 0.5
        assert record.judge is None
        assert record.chars is None


def test_extra_fields_are_kept_and_written_back():
    text = line(models={"baseline": "big", "candidate": "small"}, latency_ms={"baseline": 900, "candidate": 300})
    record = evidence.parse_line(text)
    assert record.extra == {
        "models": {"baseline": "big", "candidate": "small"},
        "latency_ms": {"baseline": 900, "candidate": 300},
    }
    assert json.loads(record.to_json()) == json.loads(text)


def test_optional_parts_may_be_absent_or_null():
    record = evidence.parse_line(line(chars=..., format_ok=...))
    assert record.chars is None and record.format_ok is None
    record = evidence.parse_line(
        line(chars={"baseline": None, "candidate": 10}, format_ok={"baseline": None, "candidate": False})
    )
    assert record.chars == evidence.Chars(baseline=None, candidate=10)
    assert record.format_ok == evidence.FormatChecks(baseline=None, candidate=False)


def test_a_claimed_score_must_match_the_verdicts():
    assert evidence.parse_line(line(score=0.75)).extra["score"] == 0.75
    with pytest.raises(evidence.EvidenceError, match="score"):
        evidence.parse_line(line(score=1.0))
    with pytest.raises(evidence.EvidenceError, match="score"):
        evidence.parse_line(line(score=0.6))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (line(seq=...), 'missing field "seq"'),
        (line(id=...), 'missing field "id"'),
        (line(control=...), 'missing field "control"'),
        (line(agreement=...), 'missing field "agreement"'),
        (line(judge=...), 'missing field "judge"'),
        (line(judge={"candidate_first": "candidate"}), 'missing field "judge.baseline_first"'),
        (line(judge={"candidate_first": "A", "baseline_first": "tie"}), '"judge.candidate_first" must be one of'),
        (line(agreement="fuzzy"), '"agreement" must be null or one of'),
        (line(agreement="exact"), "agreed pair carries no judge verdicts"),
        (line(seq=-1), '"seq" must be a non-negative integer'),
        (line(seq="3"), '"seq" must be a non-negative integer'),
        (line(control="no"), '"control" must be true or false'),
        (line(chars={"baseline": -5, "candidate": 3}), '"chars.baseline" must be a non-negative integer'),
        (line(format_ok={"baseline": "yes", "candidate": True}), '"format_ok.baseline" must be true, false'),
        (line(judge_calls=1.5), '"judge_calls" must be a non-negative integer'),
    ],
)
def test_malformed_line_is_an_error_naming_source_line_and_field(text, complaint):
    with pytest.raises(evidence.EvidenceError) as caught:
        evidence.parse_line(text, line_no=7, source="run.jsonl")
    assert caught.value.source == "run.jsonl"
    assert caught.value.line_no == 7
    assert complaint in caught.value.message
    assert str(caught.value).startswith("run.jsonl:7: ")


def test_read_evidence_skips_blank_lines_and_counts_physical_lines(tmp_path: pathlib.Path):
    path = tmp_path / "evidence.jsonl"
    path.write_text(f"{line(seq=0)}\n\n{line(seq=1)}\n{line(seq=2, judge={'candidate_first': 'x'})}\n")
    with pytest.raises(evidence.EvidenceError) as caught:
        evidence.read_evidence(path)
    assert caught.value.line_no == 4
    assert caught.value.source == str(path)


def test_read_evidence_requires_evaluation_order():
    lines = [line(seq=0), line(seq=2), line(seq=1)]
    with pytest.raises(evidence.EvidenceError, match="seq 1 after seq 2") as caught:
        evidence.read_evidence(lines)
    assert caught.value.line_no == 3
    assert [r.seq for r in evidence.read_evidence(lines[:2])] == [0, 2]


def test_a_decoded_json_object_is_checked_like_a_line():
    obj = json.loads(line(judge={"candidate_first": "tie", "baseline_first": "baseline"}))
    assert evidence.from_dict(obj) == evidence.parse_line(json.dumps(obj))
    assert evidence.score(obj) == 0.25
    del obj["control"]
    with pytest.raises(evidence.EvidenceError, match='missing field "control"'):
        evidence.from_dict(obj, line_no=3, source="chunk-0001")

"""Agreement checks: when both answers say the same thing, the pair scores 0.5 without a judge call.

Checked in order, the first that holds names the agreement: exact (identical text), normalized (equal
after collapsing white space, case and trailing punctuation), json (both parse to equal JSON values),
numeric (both are the same number). These are deliberately strict: a false agreement would hide a real
difference from the test, a missed one only costs two judge calls.
"""

from __future__ import annotations

import decimal
import json
import re
from typing import Any, Literal

Agreement = Literal["exact", "normalized", "json", "numeric"]

_TRAILING_PUNCTUATION = ".!?;:,"
_CODE_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?([eE][+-]?\d+)?$")


def normalize(text: str) -> str:
    """Lower-cased, white space collapsed, trailing punctuation removed."""
    return " ".join(text.split()).casefold().rstrip(_TRAILING_PUNCTUATION).rstrip()


def _json_value(text: str) -> tuple[bool, Any]:
    stripped = text.strip()
    if fenced := _CODE_FENCE.match(stripped):
        stripped = fenced.group(1).strip()
    try:
        return True, json.loads(stripped)
    except ValueError:
        return False, None


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by value (1 == 1.0), but true is not 1 and key order does not matter."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def number(text: str) -> decimal.Decimal | None:
    """The number an answer consists of ("42", "-3.5", "1,000", "2e3", "42."), or None."""
    candidate = text.strip().rstrip(".").strip()
    if not _NUMBER.match(candidate):
        return None
    return decimal.Decimal(candidate.replace(",", ""))


def check(baseline: str, candidate: str) -> Agreement | None:
    """The first agreement that holds between the two answers, or None when they need the judge."""
    if baseline == candidate:
        return "exact"
    if normalize(baseline) == normalize(candidate):
        return "normalized"
    parsed_baseline, baseline_value = _json_value(baseline)
    parsed_candidate, candidate_value = _json_value(candidate)
    if parsed_baseline and parsed_candidate and json_equal(baseline_value, candidate_value):
        return "json"
    baseline_number, candidate_number = number(baseline), number(candidate)
    if baseline_number is not None and baseline_number == candidate_number:
        return "numeric"
    return None

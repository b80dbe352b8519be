"""Agreement checks decide a pair without the judge only when both answers say exactly the same thing."""

from __future__ import annotations

import pytest

from assay.evaluator import agreement


@pytest.mark.parametrize(
    ("baseline", "candidate", "expected"),
    [
        ("Paris", "Paris", "exact"),
        ("Paris.", "  paris ", "normalized"),
        ("The answer is  yes!", "the answer is yes", "normalized"),
        ('{"a": 1, "b": [1, 2]}', '{"b":[1,2.0],"a":1}', "json"),
        ('```json\n{"ok": true}\n```', '{"ok": true}', "json"),
        ("1,000", "1000.0", "numeric"),
        ("42.", "4.2e1", "numeric"),
    ],
)
def test_agreeing_answers_name_the_first_check_that_holds(baseline, candidate, expected):
    assert agreement.check(baseline, candidate) == expected


@pytest.mark.parametrize(
    ("baseline", "candidate"),
    [
        ("Paris", "Lyon"),
        ("yes", "no"),
        ('{"ok": true}', '{"ok": 1}'),  # true is not 1 in JSON
        ('{"a": 1}', '{"a": 1, "b": 2}'),
        ("[1, 2]", "[2, 1]"),
        ("42", "42 apples"),
        ("1,00", "100"),  # not a thousands separator
        ("It is 5.", "It is 6."),
    ],
)
def test_different_answers_go_to_the_judge(baseline, candidate):
    assert agreement.check(baseline, candidate) is None


def test_json_equal_compares_numbers_by_value_but_not_booleans_as_numbers():
    assert agreement.json_equal({"x": [1, 2.0]}, {"x": [1.0, 2]})
    assert not agreement.json_equal(True, 1)
    assert not agreement.json_equal(None, False)

"""docs/testing.md's table of hostile input says what the admission test tries: one row per class, with its
number of cases."""

from __future__ import annotations

import collections
import importlib.util
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[3]
ROW = re.compile(r"^\| (?P<kind>[^|]+?) \| (?P<count>\d+) \| (?P<result>[^|]+?) \|", re.MULTILINE)


def _admission_cases() -> list[tuple]:
    path = REPO / "tests" / "integration" / "test_admission.py"
    spec = importlib.util.spec_from_file_location("admission_cases", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HOSTILE_CASES


def test_docs_table_counts_every_admission_class_the_test_tries():
    documented = {
        row["kind"]: int(row["count"])
        for row in ROW.finditer((REPO / "docs" / "testing.md").read_text())
        if "admission" in row["result"]
    }
    tried = collections.Counter(case[0] for case in _admission_cases())
    assert documented == dict(tried)

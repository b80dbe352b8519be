"""`make demo` tells the whole story and exits 0: qualification, one Passed and one Failed candidate,
promotion, a request served by the candidate, a drift alert, the rollback."""

from __future__ import annotations

import pytest

import realparts
from assaylab import demo, litellm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]


def test_demo_runs_the_whole_loop(tmp_path, capsys):
    assert demo.run(samples=400, out=tmp_path / "demo") == 0
    out = capsys.readouterr().out
    assert "Passed (NonInferior)" in out
    assert "Failed (" in out
    assert "is now answered by gpt-4o-mini" in out
    assert "webhook answered 200" in out and "phase RolledBack" in out
    assert "is answered by gpt-4o again" in out
    reports = sorted((tmp_path / "demo").glob("*.html"))
    assert len(reports) == 2
    assert all('id="plot-bounds"' in r.read_text() for r in reports)

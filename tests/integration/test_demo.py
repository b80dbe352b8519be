"""`make demo` tells the whole story and exits 0: qualification, one Passed and one Failed candidate,
promotion, a request served by the candidate, the live quality watch judging it, the simulator degrading it,
assay proving the drop and rolling back by itself (no external alert), and, with a Prometheus, `assay top`."""

from __future__ import annotations

import json

import pytest

import realparts
from assaylab import demo, litellm, monitoring

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]


def _condition(status, type_):
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_demo_runs_the_whole_loop(tmp_path, capsys):
    assert demo.run(samples=400, out=tmp_path / "demo") == 0
    out = capsys.readouterr().out
    assert "Passed (NonInferior)" in out
    assert "Failed (" in out
    assert "is now answered by gpt-4o-mini" in out
    assert "holding its quality:" in out
    assert "rolled back by assay itself, reason QualityDrift" in out and "external alerts: none" in out
    assert "is answered by gpt-4o again" in out
    reports = sorted((tmp_path / "demo").glob("support-summary-*-*.html"))
    assert len(reports) == 2
    assert all('id="plot-bounds"' in r.read_text() for r in reports)

    # The drift step really happened, as the policy's own status says after it (no text of any prompt in it).
    status = json.loads((tmp_path / "demo" / f"{demo.POLICY}-status.json").read_text())
    assert status["phase"] == "RolledBack"
    assert _condition(status, "RolledBack")["reason"] == "QualityDrift"
    assert _condition(status, "QualityDrift")["status"] == "True"
    assert "lastAlert" not in status, "no external alert was involved"
    assert status["activeRoute"]["model"] == status["lastKnownGood"]["model"] == "gpt-4o"
    watch = status["watch"]
    assert watch["alarmedAt"] is not None and watch["eValue"] >= watch["threshold"]
    assert watch["losses"] > 0 and watch["wins"] + watch["ties"] + watch["losses"] == watch["samples"]
    assert watch["samples"] > demo.HELD_SAMPLES
    # The kept evidence replays to the same alarm, as `assay analyze --watch` would check it.
    watch_report = (tmp_path / "demo" / f"{demo.POLICY}-watch.md").read_text()
    assert "**DRIFT** (QualityDrift)" in watch_report and "matches status.watch" in watch_report

    if monitoring.find_prometheus():
        assert "realized saving measuring" in out
        assert "ROUTE" in out and "SPEND 1d" in out and "assay-demo/support-summary" in out
        assert status["spend"]["day"]["usd"] > 0
        assert status["spend"]["realized"]["baselineCostPerRequestUsd"] > 0
        page = (tmp_path / "demo" / "spend.html").read_text()
        assert "<title>Spend by route</title>" in page and "support-summary" in page

"""The live quality watch report: status.watch's numbers, the live score plot, and the watch recomputed from its
kept samples, in HTML, Markdown and JSON; `assay analyze --watch` says whether the samples reproduce status."""

from __future__ import annotations

import base64
import datetime
import io
import json
import random

import pytest
from test_report_render import PNG_SIGNATURE, Page

from assay.api import routepolicy
from assay.qualification import analyze
from assay.report import cluster, command, content, render
from assay.watch import evidence, state

PROMOTED = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)


def watched_policy(*, drop_at: int | None, samples: int = 900) -> tuple[dict, list[evidence.Chunk]]:
    """A RoutePolicy body whose status.watch recorded `samples` scores (a drop at `drop_at`), and the chunks the
    operator kept of them."""
    s = state.Settings.from_spec(
        routepolicy.Watch.model_validate({"meanDaysBetweenFalseAlarms": 1, "maxSamplesPerDay": 500}),
        qualification_margin=0.05,
    )
    watch = state.start(candidate="mini", promoted_at=PROMOTED, settings=s)
    promotion = evidence.promotion_key("mini", PROMOTED)
    pending = evidence.Pending()
    rng = random.Random(11)
    now = PROMOTED
    for i in range(samples):
        bad = drop_at is not None and i >= drop_at
        score = rng.choice([0.0, 0.0, 0.0, 0.25, 0.5, 1.0] if bad else [0.0, 0.5, 0.5, 1.0, 1.0])
        now += datetime.timedelta(seconds=20)
        before = evidence.snapshot(watch)
        state.record(watch, s, score=score, cost_usd=0.0132, now=now)
        if watch.samples > before["samples"]:
            pending.add(promotion, before, evidence.sample_after(watch, t=now, score=score), at=0.0)
    chunks = []
    for (_, chunk), segments in sorted(pending.take().items()):
        head = evidence.header(policy="team/support", candidate="mini", promoted_at=PROMOTED, chunk=chunk, settings=s)
        chunks.append(evidence.decode_chunk(evidence.encode_chunk(head, segments), source="cm"))
    status = "False" if drop_at is not None else "True"
    reason = "QualityDrift" if drop_at is not None else "Watching"
    body = {
        "metadata": {"name": "support", "namespace": "team", "uid": "u-1"},
        "status": {
            "watch": watch.to_wire(),
            "conditions": [{"type": "Watched", "status": status, "reason": reason, "message": "<b>watch</b>"}],
        },
    }
    return body, chunks


@pytest.fixture(scope="module")
def drifted() -> content.WatchReport:
    body, chunks = watched_policy(drop_at=300)
    report = content.build_watch(body, chunks, now=NOW)
    assert report is not None
    return report


def test_a_policy_without_a_watch_has_no_watch_report() -> None:
    assert content.build_watch({"metadata": {"name": "p"}, "status": {}}, []) is None


def test_the_report_recomputes_the_alarm_from_the_kept_samples(drifted: content.WatchReport) -> None:
    assert drifted.verdict == "drift" and drifted.reason == "QualityDrift"
    assert drifted.check.matches and drifted.check.complete
    assert drifted.check.alarmed_at == drifted.watch.alarmed_at is not None


def test_watch_rows_state_samples_outcomes_e_value_threshold_and_cost(drifted: content.WatchReport) -> None:
    rows = dict(content.watch_rows(drifted))
    w = drifted.watch
    assert rows["Samples judged"] == str(w.samples)
    assert rows["Wins / ties / losses"] == f"{w.wins} / {w.ties} / {w.losses}"
    assert w.e_value is not None and w.threshold is not None
    assert rows["E-value against threshold"] == f"{w.e_value:.4g} of threshold {w.threshold:.4g}"
    assert rows["Cost of watching (USD)"].startswith(f"{w.cost_usd:.4f} in all")
    assert rows["Drift proven at sample"] == str(w.alarmed_at)
    assert "matches status.watch" in rows["Evidence kept"]


def test_not_watched_reason_is_shown() -> None:
    body, chunks = watched_policy(drop_at=None, samples=50)
    body["status"]["conditions"][0].update(status="False", reason="SamplerStarved")
    report = content.build_watch(body, chunks, now=NOW)
    assert report is not None and report.verdict == "not-watched"
    assert dict(content.watch_rows(report))["Not watched because"] == "SamplerStarved"


def test_html_has_the_live_score_plot_and_escapes_text(drifted: content.WatchReport) -> None:
    text = render.watch_to_html(drifted)
    page = Page(text)
    (source,) = page.figures["plot-watch"]
    png = base64.b64decode(source.removeprefix("data:image/png;base64,"), validate=True)
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    assert "<b>watch</b>" not in text and "&lt;b&gt;watch&lt;/b&gt;" in text
    summary = dict(row for row in page.tables["watch-table"][1:])
    assert summary["Samples judged"] == str(drifted.watch.samples)
    assert not page.tags & {"script", "link", "iframe"}


def test_markdown_and_json_carry_the_same_numbers(drifted: content.WatchReport) -> None:
    markdown = render.watch_to_markdown(drifted)
    assert f"| Samples judged | {drifted.watch.samples} |" in markdown
    data = json.loads(render.to_json(drifted))
    assert data["evidence"]["matches"] is True
    assert data["evidence"]["alarmed_at"] == drifted.watch.alarmed_at
    assert len(data["evidence"]["series"]) == drifted.watch.samples
    assert data["watch"]["samples"] == drifted.watch.samples


def test_a_plot_is_drawn_with_no_samples_kept() -> None:
    body, _ = watched_policy(drop_at=None, samples=10)
    report = content.build_watch(body, [], now=NOW)
    assert report is not None and not report.check.matches and "no samples kept" in report.check.message()
    assert render.watch_to_html(report).count('<figure id="plot-watch">') == 1


def test_report_and_analyze_watch_read_the_policy_from_the_cluster(monkeypatch, tmp_path, drifted) -> None:
    monkeypatch.setattr(cluster, "watch_report", lambda namespace, name: drifted)
    err = io.StringIO()
    assert command.main(["--watch", "support", "-n", "team", "-o", str(tmp_path / "w.md")], stderr=err) == 0
    assert "DRIFT (QualityDrift)" in err.getvalue()
    out = io.StringIO()
    assert analyze.main(["--watch", "support", "-n", "team", "--json"], stdout=out) == 0
    line = json.loads(out.getvalue())
    assert line["matches"] is True and line["alarmed_at"] == drifted.watch.alarmed_at

"""The HTML page is self-contained with three plots and the guardrail table; Markdown and JSON carry the same
numbers; text from the run is escaped."""

from __future__ import annotations

import base64
import html.parser
import json
import re

import pytest

from assay.report import content, figures, render

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(html.parser.HTMLParser):
    """The parts of an HTML page the tests look at: figures with their images, tables' rows, tags seen."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: dict[str, list[str]] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []
        self._figure: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        self.attributes += [(k, v or "") for k, v in attrs]
        if tag == "figure":
            self._figure = attributes["id"]
            self.figures[self._figure] = []
        elif tag == "img" and self._figure:
            self.figures[self._figure].append(attributes["src"])
        elif tag == "table":
            self._table = attributes["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(passing_records, settings) -> content.Report:
    return content.build(
        passing_records,
        settings,
        name="mini-vs-4o",
        source="test",
        baseline_model="gpt-4o",
        candidate_model="gpt-4o-mini",
    )


@pytest.fixture(scope="module")
def page_text(report) -> str:
    """The HTML page, drawn once for the module (plots take a fraction of a second each)."""
    return render.to_html(report)


def test_html_has_the_three_plots_as_embedded_png_images(page_text):
    page = Page(page_text)

    assert set(page.figures) == {"plot-bounds", "plot-scores", "plot-cost"}
    for figure_id, sources in page.figures.items():
        assert len(sources) == 1, figure_id
        prefix = "data:image/png;base64,"
        assert sources[0].startswith(prefix)
        png = base64.b64decode(sources[0][len(prefix) :], validate=True)
        assert png.startswith(PNG_SIGNATURE), figure_id
        assert len(png) > 10_000, f"{figure_id} looks empty"


def test_html_loads_nothing_from_outside(page_text):
    text = page_text
    page = Page(text)

    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    for name, value in page.attributes:
        if name in ("src", "href"):
            assert value.startswith("data:"), (name, value[:40])
    assert "default-src 'none'" in text


def test_html_guardrail_table_has_every_guardrail_with_value_limit_and_status(report, page_text):
    page = Page(page_text)

    header, *rows = page.tables["guardrail-table"]
    assert header[:4] == ["Guardrail", "Value", "Must be", "Status"]
    by_title = {row[0]: row for row in rows}
    assert set(by_title) == set(content.GUARDRAIL_TITLES.values())
    control = by_title["Control catch rate"]
    assert control[1] == content.number(report.stats["control_catch_rate"])
    assert control[2] == ">= 0.90"
    assert control[3] == "ok"


def test_html_summary_states_verdict_samples_p_value_and_judge_calls(report, page_text):
    page = Page(page_text)

    summary = dict(row for row in page.tables["summary-table"][1:])
    assert summary["Verdict"] == "PASSED"
    assert summary["Reason"] == "NonInferior"
    assert summary["Message"] == report.message
    assert summary["Pairs (samples)"] == str(report.stats["samples"])
    assert summary["Anytime p-value"].startswith(f"{report.stats['p_value']:.4f}")
    assert summary["Judge calls made"] == str(report.stats["judge_calls_made"])
    assert summary["Judge calls saved (agreement)"] == str(report.stats["judge_calls_saved"])


def test_markdown_carries_the_same_numbers_without_plots(report, page_text):
    text = render.to_markdown(report)
    page = Page(page_text)

    assert "<figure" not in text and "data:image" not in text
    for table in ("summary-table", "guardrail-table", "cost-table", "score-table"):
        for row in page.tables[table][1:]:
            cells = [cell.replace("|", "\\|").replace("*", "\\*") for cell in row]
            assert "| " + " | ".join(cells) + " |" in text, row


def test_json_is_the_decision_stats_with_cost_and_scores(report):
    data = json.loads(render.to_json(report))

    assert data["verdict"] == "passed" and data["reason"] == "NonInferior"
    assert data["stats"]["lower"] == report.stats["lower"]
    assert data["stats"]["p_value"] == report.stats["p_value"]
    assert data["stats"]["guardrails"] == report.stats["guardrails"]
    assert data["stats"]["trajectory"] == report.stats["trajectory"]
    assert data["cost"]["latency_ms"]["candidate"] == report.money["latency_ms"]["candidate"]
    assert sum(data["scores"]["pairs"]) == report.stats["samples"]


def test_text_from_the_run_is_escaped_in_html_and_markdown(passing_records, settings):
    hostile = 'x"><script>alert(1)</script>|`*'
    report = content.build(passing_records, settings, name=hostile, source=hostile, candidate_model=hostile)

    page_text = render.to_html(report)
    page = Page(page_text)
    markdown = render.to_markdown(report)

    assert "script" not in page.tags and "<script>" not in page_text
    assert "&lt;script&gt;" in page_text
    assert dict(page.tables["summary-table"][1:])["Candidate model"] == hostile
    assert "<script" not in markdown
    assert re.search(r"&lt;script>alert\(1\)&lt;/script>\\\|\\`\\\*", markdown)


def test_undecided_run_renders_without_a_stopping_point(settings):
    from assay.qualification import simulate

    records = simulate.simulate_evidence(20, simulate.Scenario(mu=0.5), seed=4)
    report = content.build(records, settings, name="running", source="test", ended=False)

    page = Page(render.to_html(report))

    assert set(page.figures) == {"plot-bounds", "plot-scores", "plot-cost"}
    assert dict(page.tables["summary-table"][1:])["Verdict"] == "UNDECIDED"
    assert dict(page.tables["summary-table"][1:])["Stopped at pair"] == "n/a"


def test_no_evidence_still_renders_every_plot(settings):
    report = content.build([], settings, name="empty", source="test", ended=False)

    page = Page(render.to_html(report))

    assert set(page.figures) == {"plot-bounds", "plot-scores", "plot-cost"}
    assert json.loads(render.to_json(report))["stats"]["samples"] == 0


def test_html_without_matplotlib_says_how_to_install_it(report, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)

    with pytest.raises(figures.MissingMatplotlib, match=r"pip install 'assay\[report\]'"):
        render.to_html(report)
    assert "## Guardrails" in render.to_markdown(report)

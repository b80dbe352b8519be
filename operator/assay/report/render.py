"""A Report as a self-contained HTML page, as Markdown, or as JSON.

The HTML page loads nothing: its style is inline, its plots are PNG data URIs, and a Content-Security-Policy
forbids everything else (no scripts, no fetches), so it can be mailed, attached to a ticket or archived as is.
Every text from the run (names, messages, reasons, system prompts) is HTML-escaped; in Markdown, table cells
escape the characters that would end a cell or open markup, and prompts and diffs go in fenced code blocks
whose fence is longer than any backtick run in them. Prompt text is written into the report, never logged.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Collection, Sequence

from assay.report import content, figures

FORMATS = ("html", "md", "json")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 2rem auto;
  max-width: 60rem; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.source { color: #57606a; margin-top: 0; }
.verdict { display: inline-block; padding: 0.2rem 0.7rem; border-radius: 0.4rem; font-weight: 600; }
.verdict-passed { background: #dafbe1; color: #116329; } .verdict-failed { background: #ffebe9; color: #a40e26; }
.verdict-inconclusive, .verdict-undecided { background: #fff8c5; color: #7d4e00; }
.verdict-watching { background: #dafbe1; color: #116329; } .verdict-drift { background: #ffebe9; color: #a40e26; }
.verdict-not-watched { background: #fff8c5; color: #7d4e00; }
.warning { background: #fff8c5; border-left: 4px solid #d4a72c; padding: 0.5rem 0.8rem; }
table { border-collapse: collapse; margin: 0.5rem 0; } th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem;
  text-align: left; vertical-align: top; } th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-ok { color: #116329; } .status-violated { color: #a40e26; font-weight: 600; }
.status-insufficient { color: #7d4e00; } .status-not_applicable { color: #57606a; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9rem; }
pre.prompt { background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.5rem 0.8rem; white-space: pre-wrap;
  overflow-wrap: anywhere; max-height: 24rem; overflow-y: auto; font-size: 0.85rem; }
pre.prompt .add { color: #116329; background: #dafbe1; } pre.prompt .del { color: #a40e26; background: #ffebe9; }
pre.prompt .hunk { color: #57606a; }
.note { color: #57606a; font-size: 0.9rem; }
footer { margin-top: 2rem; color: #57606a; font-size: 0.85rem; }
"""

VARIANT_HEADERS = ("Prompt", "Train score (records)", "Validation score (records)", "Format", "Picked")
GUARDRAIL_HEADERS = ("Guardrail", "Value", "Must be", "Status", "Evidence", "Reason if violated")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    table_id: str,
    numeric: Collection[int] = (),
    status_column: int | None = None,
) -> str:
    """An HTML table; cells in `numeric` columns align right, the status column is coloured by its value."""

    def cell(column: int, text: str) -> str:
        css = "num" if column in numeric else f"status-{_e(text)}" if column == status_column else None
        return f'<td class="{css}">{_e(text)}</td>' if css else f"<td>{_e(text)}</td>"

    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _guardrail_cells(report: content.Report) -> list[tuple[str, ...]]:
    return [(g.title, g.value, g.limit, g.status, g.evidence, g.reason) for g in content.guardrail_rows(report)]


def _figure(figure_id: str, png: bytes, *, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="{figure_id}"><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _diff_line(line: str) -> str:
    css = "hunk" if line.startswith(("@@", "---", "+++")) else {"+": "add", "-": "del"}.get(line[:1])
    return f'<span class="{css}">{_e(line)}</span>' if css else _e(line)


def _pre(pre_id: str, markup: str) -> str:
    # The newline after <pre> is dropped by HTML parsers, so a prompt's own leading newline survives.
    return f'<pre id="{pre_id}" class="prompt">\n{markup}</pre>'


def _prompt_html(report: content.Report) -> str:
    """The candidate's system prompt, its hash, and its diff against the baseline's ("" when not known)."""
    prompts = report.prompts
    if prompts is None:
        return ""
    parts = [f'<section id="prompt"><h2>{_e(content.prompt_title(report))}</h2>']
    parts.append(_table(("Measure", "Value"), content.prompt_rows(report), table_id="prompt-table"))
    if prompts.candidate:
        parts.append(_pre("candidate-prompt", _e(prompts.candidate)))
        parts.append(f'<p class="note">{_e(content.SERVED_AS)}</p>')
    parts.append(f'<p id="prompt-comparison">{_e(prompts.comparison)}</p>')
    if prompts.diff:
        parts.append(_pre("prompt-diff", "\n".join(map(_diff_line, prompts.diff))))
    elif prompts.baseline and not prompts.candidate:
        parts.append(_pre("baseline-prompt", _e(prompts.baseline)))
    parts.append("</section>")
    return "\n".join(parts)


def _optimization_html(report: content.Report) -> str:
    """The dataset split and the optimizer's variants, when the run carries them ("" otherwise)."""
    parts = []
    if split_rows := content.split_rows(report):
        parts.append(
            '<section id="split"><h2>Dataset split</h2>'
            + _table(("Part", "Records"), split_rows, table_id="split-table")
            + "</section>"
        )
    if variant_rows := content.variant_rows(report):
        parts.append(
            '<section id="variants"><h2>Optimizer variants</h2>'
            + _table(VARIANT_HEADERS, variant_rows, table_id="variant-table")
            + "</section>"
        )
    return "\n".join(parts)


def _page(title: str, head: str, main: str, footer: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="assay report">
<title>{_e(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
{head}
</header>
<main>
{main}
</main>
<footer>{footer}</footer>
</body>
</html>
"""


def spend_page(
    title: str, summary: str, headers: Sequence[str], rows: Sequence[Sequence[str]], *, cut_after: int, cut: str
) -> str:
    """`assay top --output html`: the spend ranking as a page a leader can read, with the Pareto cut drawn as a
    row after the first `cut_after` rows (none when every row, or none, is above it)."""
    shown = [list(row) for row in rows]
    if 0 < cut_after < len(shown):
        shown.insert(cut_after, ["", f"---- {cut} of spend above this line ----", *[""] * (len(headers) - 2)])
    numeric = {i for i, h in enumerate(headers) if h.split(" ")[0] in {"#", "SPEND", "SHARE", "CUM", "REQUESTS"}}
    table = _table(headers, shown, table_id="spend", numeric=numeric)
    head = f'<p id="summary">{_e(summary)}</p>'
    footer = "Read from the gateway's metrics through Prometheus by assay top (docs/spend.md)."
    return _page(title, head, f"<section><h2>Ranked by spend</h2>{table}</section>", _e(footer))


def _head(report: content.Report | content.WatchReport, warning: str) -> str:
    """Under the title: where the report is from, its verdict and reason, its message, and any warning."""
    return f"""<p class="source">{_e(report.source)}</p>
<p><span id="verdict" class="verdict verdict-{_e(report.verdict)}">{_e(report.verdict.upper())}</span>
<span id="reason">{_e(report.reason)}</span></p>
<p id="message">{_e(report.message)}</p>
{warning}"""


def to_html(report: content.Report) -> str:
    """The report as one self-contained HTML page (needs matplotlib for the plots)."""
    settings = report.settings
    plots = [
        _figure(
            "plot-bounds",
            figures.bounds(report),
            alt="Confidence bounds and estimate against pairs evaluated",
            caption=f"The anytime-valid confidence sequence: the run passes when the lower bound clears "
            f"0.5 - margin = {settings.null_mean:.3f} and fails when the upper bound falls below "
            f"{'0.5' if settings.futility else 'it'}. Looking at it after every pair is allowed.",
        ),
        _figure(
            "plot-scores",
            figures.scores(report),
            alt="Score distribution of pairs and controls",
            caption="Each pair's score is the mean over both presentation orders (candidate win 1, tie 0.5, loss "
            "0). A sensitive judge scores controls (a degraded copy of the baseline) below 0.5.",
        ),
        _figure(
            "plot-cost",
            figures.cost_and_latency(report),
            alt="Cost and latency per request, baseline and candidate",
            caption="Mean measured cost (tokens x prices) and median latency per request. "
            + content.savings_line(report),
        ),
    ]
    guardrail_table = _table(
        GUARDRAIL_HEADERS, _guardrail_cells(report), table_id="guardrail-table", numeric={1, 4}, status_column=3
    )
    warning = ""
    if report.disagrees_with_status and report.recorded is not None:
        warning = (
            f'<p class="warning">The run\'s status in the cluster says {_e(report.recorded.phase)} '
            f"({_e(report.recorded.reason)}), but the evidence found now gives {_e(report.verdict)}: evidence "
            "may have been deleted, or the run is still being aggregated.</p>"
        )
    summary = _table(("Measure", "Value"), content.summary_rows(report), table_id="summary-table")
    money = _table(
        ("Per request", "Baseline", "Candidate"), content.money_rows(report), table_id="cost-table", numeric={1, 2}
    )
    scores = _table(
        ("Score", "Pairs", "Controls"), content.score_rows(report), table_id="score-table", numeric={0, 1, 2}
    )
    title = f"Qualification report: {report.name}"
    head = _head(report, warning)
    main = f"""<section id="summary"><h2>Summary</h2>{summary}</section>
{_prompt_html(report)}
{_optimization_html(report)}
<section id="guardrails"><h2>Guardrails</h2>{guardrail_table}</section>
<section id="plots"><h2>Plots</h2>
{"".join(plots)}
</section>
<section id="cost"><h2>Cost and latency</h2>{money}<p>{_e(content.savings_line(report))}</p></section>
<section id="scores"><h2>Score distribution</h2>{scores}</section>"""
    footer = f"""Generated by <code>assay report</code> at {_e(report.generated_at)}. The verdict is recomputed from the
evidence in evaluation order with the run's own settings (margin {settings.margin:g}, alpha {settings.alpha:g},
{settings.candidates} candidate(s) on the pool, min/max samples {settings.min_samples}/{settings.max_samples},
{settings.min_controls} controls)."""
    return _page(title, head, main, footer)


def watch_to_html(report: content.WatchReport) -> str:
    """A RoutePolicy's live quality watch as one self-contained HTML page: its numbers, the live score plot,
    and whether its kept samples reproduce status.watch."""
    plot = _figure(
        "plot-watch",
        figures.watch_scores(report),
        alt="Running mean score against the drift margin, and the e-value against its threshold",
        caption="Each sampled live request is replayed to the last known good baseline and judged blind in both "
        "orders. Drift is proven when the e-value reaches its threshold (or, in the watch window, the upper bound "
        "falls below the drift margin); looking after every sample is allowed.",
    )
    warning = ""
    if not report.check.matches:
        warning = f'<p class="warning">The kept samples do not reproduce status.watch: {_e(report.check.message())}</p>'
    summary = _table(("Measure", "Value"), content.watch_rows(report), table_id="watch-table")
    head = _head(report, warning)
    main = f"""<section id="summary"><h2>Watch</h2>{summary}</section>
<section id="plots"><h2>Live score</h2>{plot}</section>"""
    footer = (
        f"Generated by <code>assay report --watch</code> at {_e(report.generated_at)}. The e-value and alarm are "
        "recomputed from the kept scores with the watch's own settings. No prompt or response text is kept."
    )
    return _page(f"Live quality watch: {report.name}", head, main, footer)


def _md_cell(text: object) -> str:
    """Text that stays text in a Markdown table cell: no cell break, no code span, emphasis or HTML tag."""
    out = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    out = out.replace("`", "\\`").replace("*", "\\*")
    return _TAG_START.sub("&lt;", out)  # "<= 0.05" stays readable; "<script" cannot become a tag


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fenced(text: str, info: str = "") -> list[str]:
    """`text` as a fenced code block whose fence is longer than any backtick run in it, so no line can close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, *text.splitlines(), fence]


def _md_prompt(report: content.Report) -> list[str]:
    prompts = report.prompts
    if prompts is None:
        return []
    parts = [
        f"## {content.prompt_title(report)}",
        "",
        _md_table(("Measure", "Value"), content.prompt_rows(report)),
        "",
    ]
    if prompts.candidate:
        parts += [*_fenced(prompts.candidate, "text"), "", _md_cell(content.SERVED_AS), ""]
    parts += [_md_cell(prompts.comparison), ""]
    if prompts.diff:
        parts += [*_fenced("\n".join(prompts.diff), "diff"), ""]
    elif prompts.baseline and not prompts.candidate:
        parts += [*_fenced(prompts.baseline, "text"), ""]
    return parts


def _md_optimization(report: content.Report) -> list[str]:
    parts: list[str] = []
    if split_rows := content.split_rows(report):
        parts += ["## Dataset split", "", _md_table(("Part", "Records"), split_rows), ""]
    if variant_rows := content.variant_rows(report):
        parts += ["## Optimizer variants", "", _md_table(VARIANT_HEADERS, variant_rows), ""]
    return parts


def _md_head(report: content.Report | content.WatchReport) -> list[str]:
    return [
        _md_cell(report.source),
        "",
        f"**{report.verdict.upper()}** ({_md_cell(report.reason)}): {_md_cell(report.message)}",
        "",
    ]


def to_markdown(report: content.Report) -> str:
    """The report as Markdown: the same tables and numbers as the HTML page, without the plots."""
    parts = [
        f"# Qualification report: {_md_cell(report.name)}",
        "",
        *_md_head(report),
    ]
    if report.disagrees_with_status and report.recorded is not None:
        parts += [
            f"> The status in the cluster says {_md_cell(report.recorded.phase)}, but the evidence found now gives "
            f"{report.verdict}.",
            "",
        ]
    parts += [
        "## Summary",
        "",
        _md_table(("Measure", "Value"), content.summary_rows(report)),
        "",
        *_md_prompt(report),
        *_md_optimization(report),
        "## Guardrails",
        "",
        _md_table(GUARDRAIL_HEADERS, _guardrail_cells(report)),
        "",
        "## Cost and latency",
        "",
        _md_table(("Per request", "Baseline", "Candidate"), content.money_rows(report)),
        "",
        _md_cell(content.savings_line(report)),
        "",
        "## Score distribution",
        "",
        _md_table(("Score", "Pairs", "Controls"), content.score_rows(report)),
        "",
        f"Generated by `assay report` at {report.generated_at}.",
        "",
    ]
    return "\n".join(parts)


def to_json(report: content.Report | content.WatchReport) -> str:
    """The report as one JSON object: verdict, reason, message, the decision's stats, cost, scores, settings
    (of a watch: status.watch, its settings, and the replay with every kept sample)."""
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


RENDERERS: dict[str, Callable[[content.Report], str]] = {"html": to_html, "md": to_markdown, "json": to_json}


def watch_to_markdown(report: content.WatchReport) -> str:
    """The watch report as Markdown: the same table as the HTML page, without the plot."""
    parts = [
        f"# Live quality watch: {_md_cell(report.name)}",
        "",
        *_md_head(report),
        _md_table(("Measure", "Value"), content.watch_rows(report)),
        "",
        f"Generated by `assay report --watch` at {report.generated_at}.",
        "",
    ]
    return "\n".join(parts)


WATCH_RENDERERS: dict[str, Callable[[content.WatchReport], str]] = {
    "html": watch_to_html,
    "md": watch_to_markdown,
    "json": to_json,
}

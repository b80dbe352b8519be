"""The report's plots as PNG bytes, drawn with matplotlib's Agg backend (no display, no pyplot state).

matplotlib is an optional dependency (the `report` extra): it is imported when a plot is drawn, and its
absence raises MissingMatplotlib saying how to install it. The Markdown and JSON reports do not need it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from assay.report import content

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BASELINE_COLOR = "#4c72b0"
CANDIDATE_COLOR = "#dd8452"
CONTROL_COLOR = "#8c8c8c"
BAR_COLOR = "#c44e52"
DPI = 110
RECENT_MEAN = 50  # samples in the watch plot's moving mean: shows a drop the running mean from the start hides


class MissingMatplotlib(RuntimeError):
    """The HTML report needs matplotlib, which is not installed."""


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingMatplotlib(
            "the HTML report draws its plots with matplotlib, which is not installed: "
            "pip install 'assay[report]' (or use --format md or --format json)"
        ) from None
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No Software/creation metadata: the same report draws the same bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#666666")
    axes.set_xticks([])
    axes.set_yticks([])


def bounds(report: content.Report) -> bytes:
    """The confidence sequence against pairs evaluated: lower and upper bounds, the estimate, the bar
    (0.5 - margin), the 0.5 line, and where the test stopped."""
    stats, settings = report.stats, report.settings
    figure = _figure(9.6, 4.2)
    axes = figure.add_subplot()
    trajectory = stats["trajectory"]
    if not trajectory:
        _empty(axes, "no evidence yet")
        return _png(figure)
    n = [point[0] for point in trajectory]
    lower = [point[1] for point in trajectory]
    upper = [point[2] for point in trajectory]
    estimate = [point[3] for point in trajectory]
    level = settings.pass_level
    axes.fill_between(n, lower, upper, color=CANDIDATE_COLOR, alpha=0.15, linewidth=0)
    axes.plot(n, upper, color=CANDIDATE_COLOR, linewidth=1.2, label=f"upper bound (level {settings.alpha:g})")
    axes.plot(n, lower, color=CANDIDATE_COLOR, linewidth=1.8, label=f"lower bound (level {level:.3g})")
    axes.plot(n, estimate, color="#333333", linewidth=1.0, linestyle="-.", label="estimate (mean score)")
    axes.axhline(0.5, color="#555555", linewidth=1.0, linestyle=":", label="0.5: as good as the baseline")
    axes.axhline(
        stats["null_mean"],
        color=BAR_COLOR,
        linewidth=1.4,
        linestyle="--",
        label=f"bar 0.5 - margin = {stats['null_mean']:.3f}",
    )
    stop = content.stopped_at(report)
    if stop is not None:
        axes.axvline(stop, color="#222222", linewidth=1.0, label=f"stopped at pair {stop}: {report.verdict}")
    if stats["crossed_at"] is not None:
        cleared = f"lower bound cleared the bar (pair {stats['crossed_at']})"
        axes.plot([stats["crossed_at"]], [stats["null_mean"]], "o", color=BAR_COLOR, label=cleared)
    if stats["failed_at"] is not None:
        fell = f"upper bound fell below {'0.5' if settings.futility else 'the bar'} (pair {stats['failed_at']})"
        axes.plot([stats["failed_at"]], [stats["upper"]], "v", color=BAR_COLOR, label=fell)
    axes.set_xlim(0, max(n[-1], stop or 0) * 1.02 + 1)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("pairs evaluated (controls excluded)")
    axes.set_ylabel("mean score of the candidate")
    axes.set_title("Anytime-valid confidence sequence")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return _png(figure)


def _label_bars(axes: Axes, bars: Any, texts: list[str]) -> None:
    for bar, text in zip(bars, texts, strict=True):
        axes.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize="small",
            xytext=(0, 2),
            textcoords="offset points",
        )


def scores(report: content.Report) -> bytes:
    """How often each score s in {0, .25, .5, .75, 1} occurred, for pairs and for controls."""
    figure = _figure(6.4, 3.8)
    axes = figure.add_subplot()
    pairs, controls = report.scores["pairs"], report.scores["controls"]
    if not sum(pairs) and not sum(controls):
        _empty(axes, "no evidence yet")
        return _png(figure)
    positions = list(range(len(content.SCORE_LABELS)))
    width = 0.4 if sum(controls) else 0.7
    offset = width / 2 if sum(controls) else 0.0
    bars = axes.bar([p - offset for p in positions], pairs, width, color=CANDIDATE_COLOR, label="pairs")
    _label_bars(axes, bars, [str(c) for c in pairs])
    if sum(controls):
        bars = axes.bar([p + offset for p in positions], controls, width, color=CONTROL_COLOR, label="controls")
        _label_bars(axes, bars, [str(c) for c in controls])
    axes.set_xticks(positions, list(content.SCORE_LABELS))
    axes.set_xlabel("score s (0: baseline won both orders, 1: candidate won both)")
    axes.set_ylabel("records")
    axes.set_title("Score distribution")
    axes.margins(y=0.12)
    axes.legend(fontsize="small")
    return _png(figure)


def cost_and_latency(report: content.Report) -> bytes:
    """Cost per request and median latency per request, baseline beside candidate."""
    figure = _figure(8.0, 3.4)
    measures = [
        ("cost", "USD per request", "Cost per request", lambda v: f"${v:.6f}"),
        ("latency_ms", "ms (median)", "Latency per request", lambda v: f"{v:.0f} ms"),
    ]
    for axes, (key, unit, title, fmt) in zip(figure.subplots(1, 2), measures, strict=True):
        values = report.money[key]
        axes.set_title(title)
        if values["baseline"] is None and values["candidate"] is None:
            _empty(axes, "not measured")
            continue
        heights = [values["baseline"] or 0.0, values["candidate"] or 0.0]
        bars = axes.bar(["baseline", "candidate"], heights, color=[BASELINE_COLOR, CANDIDATE_COLOR], width=0.6)
        _label_bars(axes, bars, ["n/a" if v is None else fmt(v) for v in (values["baseline"], values["candidate"])])
        axes.set_ylabel(unit)
        axes.margins(y=0.15)
    return _png(figure)


def watch_scores(report: content.WatchReport) -> bytes:
    """The live score over time: the running mean score (and the watch window's upper bound) against the drift
    margin, and the e-detector's e-value against its threshold on a log scale, with the alarm marked."""
    check, watch = report.check, report.watch
    series = check.series
    e_values = [(s.n, s.e_value) for s in series if s.e_value is not None]
    figure = _figure(9.6, 6.0 if e_values else 3.8)
    panels = figure.subplots(2, 1, sharex=True) if e_values else [figure.add_subplot()]
    mean_axes = panels[0]
    if not series:
        _empty(mean_axes, "no samples kept yet")
        return _png(figure)
    means = [(s.n, m) for s, m in zip(series, check.means, strict=True) if m is not None]
    if means:
        mean_axes.plot(*zip(*means, strict=True), color=CANDIDATE_COLOR, linewidth=1.6, label="running mean score")
    recent = [
        (s.n, sum(x.score for x in series[max(0, i + 1 - RECENT_MEAN) : i + 1]) / min(i + 1, RECENT_MEAN))
        for i, s in enumerate(series)
    ]
    mean_axes.plot(
        *zip(*recent, strict=True),
        color=BASELINE_COLOR,
        linewidth=0.9,
        alpha=0.8,
        label=f"mean of the last {RECENT_MEAN}",
    )
    uppers = [(s.n, s.upper) for s in series if s.upper is not None]
    if uppers:
        mean_axes.plot(
            *zip(*uppers, strict=True), color="#333333", linewidth=1.0, linestyle="-.", label="window upper bound"
        )
    mean_axes.axhline(0.5, color="#555555", linewidth=1.0, linestyle=":", label="0.5: as good as the baseline")
    if watch.drift_margin is not None:
        margin = f"drift margin {watch.drift_margin:.3f}"
        mean_axes.axhline(watch.drift_margin, color=BAR_COLOR, linewidth=1.4, linestyle="--", label=margin)
    mean_axes.set_ylim(0.0, 1.0)
    mean_axes.set_ylabel("mean score of the candidate")
    mean_axes.set_title("Live quality against the last known good baseline")
    if e_values:
        e_axes = panels[1]
        e_axes.plot(*zip(*e_values, strict=True), color=CANDIDATE_COLOR, linewidth=1.4, label="e-value")
        if watch.threshold is not None:
            e_axes.axhline(
                watch.threshold,
                color=BAR_COLOR,
                linewidth=1.4,
                linestyle="--",
                label=f"threshold {watch.threshold:.4g}",
            )
        e_axes.set_yscale("log")
        e_axes.set_ylabel("e-value (log scale)")
        e_axes.grid(True, alpha=0.3)
    at = check.alarmed_at if check.alarmed_at is not None else watch.alarmed_at
    for axes in panels:
        if at is not None:
            axes.axvline(at, color="#222222", linewidth=1.0, label=f"drift proven at sample {at}")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    panels[-1].set_xlabel("sample (judged live requests since the promotion)")
    return _png(figure)

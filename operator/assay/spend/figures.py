"""A RoutePolicy's status.spend from what was read: the figures per window, the realized saving after a
promotion, and whether anything changed (a status write only when it did). Pure: data in, data out.

Realized saving: while the baseline serves the route, its live cost per request over 7 days is kept as the
pre-promotion figure; once a candidate is promoted that figure is frozen, and a day after the promotion the
route's cost per request over the last day (all of it served since the promotion) is compared with it:
`ratio = 1 - promoted / baseline`, next to the qualification's projected saving. Both are per request, so
they compare like with like only if the traffic mix did not change (docs/spend.md).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from assay import clock
from assay.spend import forecast

# status.spend field -> the Prometheus window it is read over.
WINDOWS: Mapping[str, str] = {"day": "1d", "week": "7d", "month": "30d"}
BASELINE_WINDOW = "week"
PROMOTED_WINDOW = "day"
# The promoted figure is read over PROMOTED_WINDOW, so it is all post-promotion traffic only after this long.
REALIZED_AFTER = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Reading:
    """Spend (USD), requests (None: the gateway counts none) and outcomes (None: no spec.outcome, or not read) on
    one route over one window."""

    usd: float
    requests: float | None
    outcomes: float | None = None


def _significant(value: float, digits: int = 6) -> float:
    """Six significant digits: the noise of increase()'s extrapolation below that is not a change worth a write."""
    return float(f"{value:.{digits}g}")


def usd_display(usd: float) -> str:
    """`$12.34`, or `$0.0042` below a dollar (cents would hide a cheap route's spend)."""
    return f"${usd:,.2f}" if abs(usd) >= 1 or usd == 0 else f"${usd:.4f}"


def _per(usd: float, count: float | None) -> float | None:
    """usd / count; None without a positive count."""
    return usd / count if count and count > 0 else None


def cost_per_request(reading: Reading | None) -> float | None:
    return None if reading is None else _per(reading.usd, reading.requests)


def cost_per_outcome(reading: Reading | None) -> float | None:
    return None if reading is None else _per(reading.usd, reading.outcomes)


def figure(reading: Reading) -> dict[str, Any]:
    """One window's figure as status carries it."""
    result: dict[str, Any] = {"usd": _significant(reading.usd), "display": usd_display(reading.usd)}
    if reading.requests is not None:
        result["requests"] = float(round(reading.requests))
    per_request = cost_per_request(reading)
    if per_request is not None:
        result["costPerRequestUsd"] = _significant(per_request)
    if reading.outcomes is not None:
        result["outcomes"] = _significant(reading.outcomes)
    per_outcome = cost_per_outcome(reading)
    if per_outcome is not None:
        result["costPerOutcomeUsd"] = _significant(per_outcome)
    return result


def realized(
    previous: Mapping[str, Any] | None,
    readings: Mapping[str, Reading],
    *,
    promoted_at: datetime.datetime | None,
    projected_ratio: float | None,
    now: datetime.datetime,
) -> dict[str, Any] | None:
    """status.spend.realized (module docstring). `promoted_at` None: the baseline serves the route. The cost per
    outcome (spec.outcome) is kept before and measured after a promotion the same way as the cost per request."""
    before = (previous or {}).get("baselineCostPerRequestUsd")
    before_outcome = (previous or {}).get("baselineCostPerOutcomeUsd")
    if promoted_at is None:
        live = cost_per_request(readings.get(BASELINE_WINDOW))
        live_outcome = cost_per_outcome(readings.get(BASELINE_WINDOW))
        kept = {
            "baselineCostPerRequestUsd": _significant(live) if live is not None else before,
            "baselineCostPerOutcomeUsd": _significant(live_outcome) if live_outcome is not None else before_outcome,
        }
        kept = {key: value for key, value in kept.items() if value is not None}
        return kept or None
    result: dict[str, Any] = {}
    if before is not None:
        result["baselineCostPerRequestUsd"] = before
    if before_outcome is not None:
        result["baselineCostPerOutcomeUsd"] = before_outcome
    if projected_ratio is not None:
        result["projectedRatio"] = round(projected_ratio, 4)
    after = cost_per_request(readings.get(PROMOTED_WINDOW))
    projected = f" (projected {projected_ratio:.0%})" if projected_ratio is not None else ""
    measured = now - promoted_at >= REALIZED_AFTER
    after_outcome = cost_per_outcome(readings.get(PROMOTED_WINDOW))
    if measured and after_outcome is not None:
        result["promotedCostPerOutcomeUsd"] = _significant(after_outcome)
    if before is None:
        result["display"] = "no baseline figure"
    elif not measured or after is None:
        result["display"] = "measuring" + projected
    else:
        ratio = 1 - after / float(before)
        result.update(promotedCostPerRequestUsd=_significant(after), ratio=round(ratio, 4))
        result["display"] = f"{ratio:.0%}{projected}"
    return result


def forecast_figure(
    found: forecast.Forecast, *, clock: forecast.MonthClock, saving_percent: float | None
) -> dict[str, Any]:
    """status.spend.forecast: this (UTC) month's month-end spend with its 95% interval (assay.spend.forecast), and
    with a qualified candidate not promoted (its projected saving in percent), the USD it would still save this
    month if promoted now."""
    result: dict[str, Any] = {
        "month": clock.month_start.strftime("%Y-%m"),
        "spentUsd": _significant(found.spent),
        "monthEndUsd": _significant(found.point),
        "method": found.method,
        "daysObserved": found.days_observed,
    }
    shown = usd_display(found.point)
    if found.low is not None and found.high is not None:
        result.update(lowUsd=_significant(found.low), highUsd=_significant(found.high))
        shown += f" ({usd_display(found.low)}-{usd_display(found.high)})"
    left = forecast.left_on_table(found, saving_percent)
    if saving_percent is not None and saving_percent > 0:
        result["leftOnTableUsd"] = _significant(left)
        shown += f", {usd_display(left)} left on the table"
    result["display"] = shown
    return result


def spend_status(
    current: Mapping[str, Any] | None,
    readings: Mapping[str, Reading],
    *,
    promoted_at: datetime.datetime | None,
    projected_ratio: float | None,
    now: datetime.datetime,
    month_end: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """status.spend from this read (with `month_end`, the forecast_figure). When no figure changed, `current`
    itself (readAt included) comes back, so the caller writes nothing; otherwise the new figures with readAt = now."""
    current = dict(current or {})
    values: dict[str, Any] = {key: figure(readings[key]) for key in WINDOWS if key in readings}
    gained = realized(
        current.get("realized"), readings, promoted_at=promoted_at, projected_ratio=projected_ratio, now=now
    )
    if gained is not None:
        values["realized"] = gained
    if month_end is not None:
        values["forecast"] = dict(month_end)
    if {key: value for key, value in current.items() if key != "readAt"} == values:
        return current
    return {"readAt": clock.stamp(now), **values}

"""Month-end spend per route, with an interval, and the money a qualified candidate would save. Pure.

The method, in full (docs/spend.md shows it with numbers):

- Spend so far this month is observed: the complete days' spend d_1..d_k plus today's spend so far.
- The rest of the month, R days (today's remainder included, as a fraction), is forecast from the complete
  days: each future day is taken as a draw from the same distribution as d_1..d_k, so the rest of the month
  is R * mean(d) and its 95% prediction interval is R * mean(d) +- t(0.975, k-1) * sd(d) * sqrt(R + R^2 / k)
  (R days of day-to-day noise, plus the uncertainty of the mean itself). The low end never goes below
  what is already spent.
- With fewer than two complete days there is no spread to measure: the forecast is the run rate (spend so
  far / days elapsed, times the days in the month) and it has no interval.

A trend within the month (traffic growing) is not modelled: the interval is honest about noise, not drift.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import math
import statistics
from collections.abc import Sequence

# Student's t, two-sided 95% (the 0.975 quantile), by degrees of freedom: a month has at most 30 complete
# days before its last, so df <= 29 (the stdlib has no t distribution, and the operator takes no scipy).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (the normal's 1.96 beyond 30)."""
    if df < 1:
        raise ValueError("Student's t needs at least one degree of freedom")
    return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclasses.dataclass(frozen=True)
class MonthClock:
    """Where `now` falls in its (UTC) month: the month's start, complete days, today's elapsed fraction."""

    month_start: datetime.datetime
    complete_days: int
    day_fraction: float
    days_in_month: int

    @classmethod
    def at(cls, now: datetime.datetime) -> MonthClock:
        now = now.astimezone(datetime.UTC)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        fraction = (now - midnight).total_seconds() / 86400
        return cls(start, now.day - 1, fraction, calendar.monthrange(now.year, now.month)[1])

    @property
    def remaining_days(self) -> float:
        """Days left in the month, today's remainder included."""
        return self.days_in_month - self.complete_days - self.day_fraction

    def day_end(self, index: int) -> datetime.datetime:
        """The midnight ending complete day `index` (0 for the 1st of the month)."""
        return self.month_start + datetime.timedelta(days=index + 1)


@dataclasses.dataclass(frozen=True)
class Forecast:
    """Month-end spend in USD: the point forecast and its 95% interval (None without two complete days)."""

    spent: float
    point: float
    low: float | None
    high: float | None
    method: str  # "daily-mean-t" or "run-rate"
    days_observed: int

    def if_saving(self, ratio: float) -> float:
        """Month-end spend had the rest of the month cost `1 - ratio` of the forecast (a promotion now)."""
        return self.spent + (self.point - self.spent) * (1 - ratio)


def month_end(daily: Sequence[float], *, today: float, clock: MonthClock) -> Forecast:
    """The month-end forecast from the complete days' spend `daily` (oldest first) and `today`'s so far."""
    if len(daily) != clock.complete_days:
        raise ValueError(f"expected {clock.complete_days} complete days of spend, got {len(daily)}")
    spent = math.fsum(daily) + today
    rest = clock.remaining_days
    k = len(daily)
    if k < 2:
        elapsed = k + clock.day_fraction
        rate = spent / elapsed if elapsed > 0 else 0.0
        return Forecast(spent, spent + rate * rest, None, None, "run-rate", k)
    mean, sd = statistics.fmean(daily), statistics.stdev(daily)
    half = t975(k - 1) * sd * math.sqrt(rest + rest * rest / k)
    point = spent + rest * mean
    return Forecast(spent, point, max(spent, point - half), point + half, "daily-mean-t", k)


def left_on_table(forecast: Forecast, saving_percent: float | None) -> float:
    """USD this month's forecast would drop by if the qualified candidate (projected saving in percent of the
    baseline's cost) were promoted now: what is already spent cannot be saved. 0 without a candidate."""
    if saving_percent is None or saving_percent <= 0:
        return 0.0
    return forecast.point - forecast.if_saving(min(saving_percent, 100.0) / 100)

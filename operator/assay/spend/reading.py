"""Spend read from Prometheus through a spend source: per group over a window, and per day this month (for
the forecast). The only module of assay.spend that queries; the arithmetic lives in sources, forecast, pareto.

A source whose every query answers no series raises prometheus.NoSeries: no data is never zero spend; the same
holds for a RoutePolicy's spec.outcome query (`outcomes`): no series is not zero outcomes.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from assay.spend import forecast, prometheus, sources

# What spec.outcome.query writes for the window it is read over.
WINDOW_PLACEHOLDER = "$window"


class Batch:
    """Each distinct query asked once, at one time `at`, however many policies ask it: the operator's spend loop
    reads every policy's route from the same few answers. A failed query fails the same way for every asker,
    without being sent again."""

    def __init__(self, client: prometheus.Querier, *, at: float) -> None:
        self.client = client
        self.at = at
        self._answers: dict[str, list[prometheus.Sample] | prometheus.PrometheusError] = {}

    @property
    def sent(self) -> int:
        """How many queries went to Prometheus."""
        return len(self._answers)

    def query(self, expr: str, *, at: float | None = None) -> list[prometheus.Sample]:
        if at is not None and at != self.at:
            raise ValueError(f"a batch reads at {self.at}, not at {at}")
        if expr not in self._answers:
            try:
                self._answers[expr] = self.client.query(expr, at=self.at)
            except prometheus.PrometheusError as exc:
                self._answers[expr] = exc
        answer = self._answers[expr]
        if isinstance(answer, prometheus.PrometheusError):
            raise answer
        return answer


class PastDays:
    """Answers to queries at a past time (a complete day's midnight), kept across the spend loop's rounds: a day
    that has ended does not change. `over(batch)` is the Querier of one round: a query at the batch's time goes to
    the batch, one at a past time is asked once and kept. Entries from before `forget_before` are dropped."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, float], list[prometheus.Sample]] = {}
        self.sent = 0

    def forget_before(self, at: float) -> None:
        self._answers = {key: value for key, value in self._answers.items() if key[1] >= at}

    def over(self, batch: Batch) -> prometheus.Querier:
        days = self

        class _Round:
            def query(self, expr: str, *, at: float | None = None) -> list[prometheus.Sample]:
                if at is None or at == batch.at:
                    return batch.query(expr)
                key = (expr, at)
                if key not in days._answers:
                    days.sent += 1
                    days._answers[key] = batch.client.query(expr, at=at)
                return days._answers[key]

        return _Round()


def _read(client: prometheus.Querier, queries: Sequence[sources.SpendQuery], *, at: float | None) -> dict[str, float]:
    answers = [(query, client.query(query.expr, at=at)) for query in queries]
    if queries and not any(samples for _, samples in answers):
        shown = " | ".join(query.expr for query in queries)
        raise prometheus.NoSeries(
            f"no series for {shown}: is the gateway scraped by this Prometheus, with its metrics enabled?",
            query=shown,
        )
    return sources.totals(answers)


def spend(
    client: prometheus.Querier,
    source: sources.SpendSource,
    window: str,
    *,
    by: str = "route",
    at: float | None = None,
) -> dict[str, float]:
    """USD per group over the `window` ending at `at` (default now)."""
    return _read(client, source.spend_queries(window, by=by), at=at)


def requests(
    client: prometheus.Querier,
    source: sources.SpendSource,
    window: str,
    *,
    by: str = "route",
    at: float | None = None,
) -> dict[str, float] | None:
    """Requests per group over the window; None when the source has no request counter or it has no series
    (requests are context for the spend figure: their absence is shown as unknown, not as an error)."""
    queries = source.request_queries(window, by=by)
    if not queries:
        return None
    try:
        return _read(client, queries, at=at)
    except prometheus.NoSeries:
        return None


def outcomes(client: prometheus.Querier, query: str, window: str, *, at: float | None = None) -> float:
    """The outcomes over `window` counted by spec.outcome.query (`$window` filled in): its series summed. No series
    is not zero outcomes: NoSeries."""
    expr = query.replace(WINDOW_PLACEHOLDER, prometheus.check_duration(window))
    samples = client.query(expr, at=at)
    if not samples:
        raise prometheus.NoSeries(f"no series for spec.outcome.query {expr!r}", query=expr)
    return sum(sample.value for sample in samples)


@dataclasses.dataclass(frozen=True)
class MonthSoFar:
    """Spend per group on each complete day of this month (oldest first) and today so far."""

    clock: forecast.MonthClock
    daily: dict[str, list[float]]
    today: dict[str, float]

    def forecasts(self) -> dict[str, forecast.Forecast]:
        groups = set(self.daily) | set(self.today)
        days = self.clock.complete_days
        return {
            group: forecast.month_end(
                self.daily.get(group, [0.0] * days), today=self.today.get(group, 0.0), clock=self.clock
            )
            for group in groups
        }


def month_so_far(
    client: prometheus.Querier,
    source: sources.SpendSource,
    *,
    now: datetime.datetime,
    by: str = "route",
) -> MonthSoFar:
    """One `increase(...[1d])` instant query per complete day (evaluated at each midnight) and one for today.

    A day without series for a group counts 0 for it (the group had no traffic that day); a month with no
    series at all raises NoSeries."""
    clock = forecast.MonthClock.at(now)
    per_day: list[dict[str, float]] = []
    for index in range(clock.complete_days):
        try:
            per_day.append(spend(client, source, "1d", by=by, at=clock.day_end(index).timestamp()))
        except prometheus.NoSeries:
            per_day.append({})
    seconds = int((now - clock.month_start.astimezone(now.tzinfo)).total_seconds() - clock.complete_days * 86400)
    today: dict[str, float] = {}
    if seconds > 0:
        try:
            today = spend(client, source, f"{seconds}s", by=by, at=now.timestamp())
        except prometheus.NoSeries:
            today = {}
    groups = set(today).union(*per_day) if per_day else set(today)
    if not groups:
        raise prometheus.NoSeries(f"no spend series this month ({by})", query="month so far")
    daily = {group: [day.get(group, 0.0) for day in per_day] for group in groups}
    return MonthSoFar(clock, daily, {group: today.get(group, 0.0) for group in groups})

"""The spend loop: every RoutePolicy's status.spend, read from the operator's Prometheus (docs/spend.md).

One loop for the cluster, not a timer per policy: each round LISTs the policies once and asks Prometheus each
distinct query once (`reading.Batch`): for LiteLLM that is a spend and a request query per window, whatever the
number of policies, answered for every route at once. A policy's status is written only when a figure or its
SpendKnown condition changed, so an idle policy costs no write. A Prometheus that cannot be read turns SpendKnown
False on every policy it concerns and keeps the figures they had (never zero spend); the next round comes after
the gateway retry policy's backoff (handle_route.RETRY), capped at the interval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic

from assay import clock, metrics
from assay.api import routepolicy
from assay.controllers import conditions, events, handle_alert, handle_route, status
from assay.qualification import cost
from assay.spend import figures, forecast, prometheus, reading, sources

logger = logging.getLogger("assay.spend")

KIND = "RoutePolicy"
CONDITION = "SpendKnown"
OUTCOME_CONDITION = "OutcomeKnown"
CONFLICT_RETRIES = 3


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one round read for one policy: its readings, or why they could not be read (reason, message)."""

    readings: Mapping[str, figures.Reading] | None = None
    reason: str | None = None
    message: str | None = None
    # With spec.outcome: None when the outcomes were read, else why not (reason, message); the spend stands anyway.
    outcome_problem: tuple[str, str] | None = None
    counts_outcomes: bool = False
    # This month's month-end forecast for the route (None when the month's spend could not be read).
    month_end: forecast.Forecast | None = None
    clock: forecast.MonthClock | None = None


def route_of(body: Mapping[str, Any]) -> str:
    """The route the policy governs: spec.gateway.route, defaulting to spec.promptType (as the operator does)."""
    spec = body.get("spec") or {}
    return str((spec.get("gateway") or {}).get("route") or spec.get("promptType") or body["metadata"]["name"])


def source_of(body: Mapping[str, Any]) -> sources.SpendSource | None:
    """The spend source of the policy's gateway kind, leaving assay's own calls out; None when the kind exports no
    spend assay can read (HTTPRoute)."""
    spec = body.get("spec") or {}
    kind = (spec.get("gateway") or {}).get("kind")
    if kind in sources.LITELLM_KINDS:
        return sources.LiteLLMSource(exclude=sources.EXCLUDE_ASSAY_CALLS)
    if kind == "EnvoyAIGatewayRoute":
        try:
            pricing = routepolicy.RoutePolicySpec.model_validate(spec).pricing
        except pydantic.ValidationError:  # admitted but refused by the models: Ready says why
            return None
        return sources.EnvoyAIGatewaySource(prices=cost.price_table(pricing))
    return None


def outcome_query_of(body: Mapping[str, Any]) -> str | None:
    """spec.outcome.query, the PromQL counting outcomes over `$window`; None without spec.outcome."""
    query = ((body.get("spec") or {}).get("outcome") or {}).get("query")
    return str(query) if query else None


def _reason(exc: prometheus.PrometheusError) -> str:
    for kind in (prometheus.PrometheusUnreachable, prometheus.BadQuery, prometheus.NoSeries, sources.UnpricedModel):
        if isinstance(exc, kind):
            return kind.__name__
    return "PrometheusError"


def _once(memo: dict[Any, Any], key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()` once per key in a round: every policy of a source shares the per-route totals of one answer
    (summing a 5,000-route answer again for each policy made a round quadratic). A failure is kept too."""
    if key not in memo:
        try:
            memo[key] = compute()
        except prometheus.PrometheusError as exc:
            memo[key] = exc
    found = memo[key]
    if isinstance(found, prometheus.PrometheusError):
        raise found
    return found


def read(
    batch: prometheus.Querier,
    source: sources.SpendSource,
    route: str,
    *,
    at: float,
    host: str,
    outcome_query: str | None = None,
    memo: dict[Any, Any] | None = None,
) -> Outcome:
    """The route's spend and requests over each window, and with `outcome_query` (spec.outcome.query) its
    outcomes. A route without series among the others' spent nothing. Outcomes that cannot be read leave the
    spend standing and say why (outcome_problem)."""
    found: dict[str, figures.Reading] = {}
    memo = {} if memo is None else memo
    try:
        for key, window in figures.WINDOWS.items():
            usd = _once(
                memo, ("spend", repr(source), window), functools.partial(reading.spend, batch, source, window, at=at)
            )
            counted = _once(
                memo,
                ("requests", repr(source), window),
                functools.partial(reading.requests, batch, source, window, at=at),
            )
            found[key] = figures.Reading(usd.get(route, 0.0), None if counted is None else counted.get(route, 0.0))
    except prometheus.PrometheusError as exc:
        return Outcome(reason=_reason(exc), message=f"spend not read from Prometheus at {host}: {exc}")
    if outcome_query is None:
        return Outcome(readings=found)
    try:
        outcomes = {
            key: reading.outcomes(batch, outcome_query, window, at=at) for key, window in figures.WINDOWS.items()
        }
    except prometheus.PrometheusError as exc:
        problem = (_reason(exc), f"outcomes not read from Prometheus at {host}: {exc}")
        return Outcome(readings=found, outcome_problem=problem, counts_outcomes=True)
    with_outcomes = {key: dataclasses.replace(value, outcomes=outcomes[key]) for key, value in found.items()}
    return Outcome(readings=with_outcomes, counts_outcomes=True)


def promoted_at(current: Mapping[str, Any], *, now: datetime.datetime) -> datetime.datetime | None:
    """When the candidate serving the route took all of it (the Promoted condition's transition); None while the
    baseline serves it alone. A canary under way (part of the traffic moved) counts as just promoted: the
    pre-promotion figure stops following the route, and nothing is measured yet."""
    if current.get("promotedCandidate"):
        promoted = conditions.get(current.get("conditions"), "Promoted") or {}
        moment = clock.parse(promoted.get("lastTransitionTime")) if promoted.get("status") == conditions.TRUE else None
        return moment or now
    return now if current.get("canaryStep") is not None else None


def unpromoted_saving(current: Mapping[str, Any]) -> float | None:
    """The projected saving (percent) of the best qualified candidate while it is not promoted: the money left on
    the table. None when no candidate passed or one serves the route already."""
    best = current.get("bestCandidate")
    if not best or current.get("promotedCandidate"):
        return None
    entry: Mapping[str, Any] = next((c for c in current.get("candidates") or [] if c.get("name") == best), {})
    saving = entry.get("savingsPercent")
    return float(saving) if saving is not None else None


def desired_status(
    current: Mapping[str, Any], outcome: Outcome, *, generation: int | None, now: datetime.datetime
) -> dict[str, Any]:
    """The policy's status with this round's spend and SpendKnown condition. A failed read keeps status.spend as it
    was. Pure."""
    desired = dict(current)
    if outcome.readings is not None:
        savings = current.get("savings") or {}
        percent = savings.get("percent")
        month_end = None
        if outcome.month_end is not None and outcome.clock is not None:
            month_end = figures.forecast_figure(
                outcome.month_end, clock=outcome.clock, saving_percent=unpromoted_saving(current)
            )
        desired["spend"] = figures.spend_status(
            current.get("spend"),
            outcome.readings,
            promoted_at=promoted_at(current, now=now),
            projected_ratio=None if percent is None else float(percent) / 100,
            now=now,
            month_end=month_end,
        )
        spend_known = (conditions.TRUE, "Read", "spend read from the gateway's metrics")
    else:
        spend_known = (conditions.FALSE, outcome.reason or "PrometheusError", outcome.message or "")

    def set_condition(found: Any, type: str, state: tuple[str, str, str]) -> Any:
        status_, reason, message = state
        return conditions.set_condition(
            found,
            type=type,
            status=status_,
            reason=reason,
            message=message,
            observed_generation=generation,
            at=clock.stamp(now),
        )

    desired["conditions"] = set_condition(current.get("conditions"), CONDITION, spend_known)
    if outcome.readings is not None and outcome.counts_outcomes:
        outcome_known = (
            (conditions.FALSE, *outcome.outcome_problem)
            if outcome.outcome_problem
            else (conditions.TRUE, "Read", "outcomes read with spec.outcome.query")
        )
        desired["conditions"] = set_condition(desired["conditions"], OUTCOME_CONDITION, outcome_known)
    elif outcome.readings is not None and conditions.get(current.get("conditions"), OUTCOME_CONDITION):
        # spec.outcome removed: its condition goes with it.
        desired["conditions"] = [c for c in desired["conditions"] if c.get("type") != OUTCOME_CONDITION]
    return desired


def _export(namespace: str, name: str, spend: Mapping[str, Any] | None) -> None:
    for key, window in figures.WINDOWS.items():
        value = ((spend or {}).get(key) or {}).get("usd")
        if value is not None:
            metrics.ROUTE_SPEND.labels(namespace=namespace, policy=name, window=window).set(float(value))
        per_outcome = ((spend or {}).get(key) or {}).get("costPerOutcomeUsd")
        if per_outcome is not None:
            metrics.ROUTE_COST_PER_OUTCOME.labels(namespace=namespace, policy=name, window=window).set(
                float(per_outcome)
            )
    month_end = (spend or {}).get("forecast") or {}
    fields = {"point": "monthEndUsd", "low": "lowUsd", "high": "highUsd", "left_on_table": "leftOnTableUsd"}
    for figure, field in fields.items():
        if month_end.get(field) is not None:
            metrics.ROUTE_FORECAST.labels(namespace=namespace, policy=name, figure=figure).set(float(month_end[field]))
    ratio = ((spend or {}).get("realized") or {}).get("ratio")
    if ratio is not None:
        metrics.REALIZED_SAVINGS.labels(namespace=namespace, policy=name).set(float(ratio))


def write(body: Mapping[str, Any], outcome: Outcome, *, now: datetime.datetime) -> bool:
    """Write the policy's spend and condition when they changed, under the policy's lock, from a fresh read.
    Returns whether anything was written."""
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    listed: dict[str, Any] = dict(body.get("status") or {})
    if not status.changed_fields(listed, desired_status(listed, outcome, generation=meta.get("generation"), now=now)):
        _export(namespace, name, listed.get("spend"))
        return False  # as listed this round: no fresh read, no write (an idle policy costs nothing more)
    for _ in range(CONFLICT_RETRIES):
        with status.locked(uid):
            fresh = status.fresh(KIND, namespace, name, uid)
            if fresh is None:
                return False
            current: dict[str, Any] = dict(fresh.get("status") or {})
            generation = fresh["metadata"].get("generation")
            desired = desired_status(current, outcome, generation=generation, now=now)
            try:
                written = status.write(
                    KIND,
                    namespace,
                    name,
                    current,
                    desired,
                    resource_version=fresh["metadata"].get("resourceVersion"),
                )
            except status.Conflict:
                continue
        _export(namespace, name, desired.get("spend"))
        was = conditions.get(current.get("conditions"), CONDITION) or {}
        if written and was.get("status") != (conditions.TRUE if outcome.readings is not None else conditions.FALSE):
            if outcome.readings is None:
                events.warning(fresh, outcome.reason or "SpendUnknown", outcome.message or "")
            elif was:
                events.normal(fresh, "SpendKnown", "spend read from the gateway's metrics again")
        was_outcome = conditions.get(current.get("conditions"), OUTCOME_CONDITION) or {}
        if written and outcome.outcome_problem and was_outcome.get("status") != conditions.FALSE:
            events.warning(fresh, outcome.outcome_problem[0], outcome.outcome_problem[1])
        return written is not None
    logger.warning("spend of %s/%s not written: it kept changing (%d conflicts)", namespace, name, CONFLICT_RETRIES)
    return False


def read_round(
    client: prometheus.Querier,
    policies: Sequence[Mapping[str, Any]],
    *,
    now: datetime.datetime,
    host: str,
    days: reading.PastDays | None = None,
) -> tuple[list[tuple[Mapping[str, Any], Outcome]], int]:
    """Every policy's outcome from one batch of queries at `now`, and how many queries were sent. Policies whose
    gateway exports no readable spend are left out. The month-end forecast reads each complete day of the month
    once per source (kept in `days` across rounds) and today's spend so far with the batch."""
    batch = reading.Batch(client, at=now.timestamp())
    days = days if days is not None else reading.PastDays()
    month_clock = forecast.MonthClock.at(now)
    days.forget_before(month_clock.month_start.timestamp())
    sent_before = days.sent
    months: dict[str, dict[str, forecast.Forecast] | None] = {}
    totals: dict[Any, Any] = {}
    outcomes: list[tuple[Mapping[str, Any], Outcome]] = []
    for body in policies:
        source = source_of(body)
        if source is None:
            continue
        route = route_of(body)
        found = read(batch, source, route, at=batch.at, host=host, outcome_query=outcome_query_of(body), memo=totals)
        if found.readings is not None:
            key = repr(source)
            if key not in months:
                try:
                    months[key] = reading.month_so_far(days.over(batch), source, now=now).forecasts()
                except prometheus.PrometheusError as exc:
                    logger.debug("month-end forecast not read: %s", exc)
                    months[key] = None
            month = months[key]
            if month is not None:
                quiet = forecast.month_end([0.0] * month_clock.complete_days, today=0.0, clock=month_clock)
                found = dataclasses.replace(found, month_end=month.get(route, quiet), clock=month_clock)
        outcomes.append((body, found))
    return outcomes, batch.sent + days.sent - sent_before


class Loop:
    """`await Loop(settings, interval=..., namespaces=...).run()` runs forever until cancelled: one round an
    interval; after a round that could not read Prometheus, the next sooner, with backoff."""

    def __init__(
        self,
        settings: prometheus.Settings,
        *,
        interval: float,
        namespaces: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.namespaces = tuple(namespaces)
        self._env = os.environ if env is None else env
        self._days = reading.PastDays()  # complete days of this month, read once for the forecast

    def round(self) -> bool:
        """One round (blocking: run it in a thread). True when every policy's spend was read."""
        now = clock.now()
        policies: list[Mapping[str, Any]] = list(handle_alert.list_policies(self.namespaces))
        outcomes: list[tuple[Mapping[str, Any], Outcome]]
        try:
            client = self.settings.client(self._env)
        except prometheus.PrometheusError as exc:
            failed = Outcome(reason="PrometheusError", message=f"spend not read from {self.settings.host}: {exc}")
            outcomes = [(body, failed) for body in policies if source_of(body) is not None]
        else:
            with client:
                outcomes, sent = read_round(client, policies, now=now, host=self.settings.host, days=self._days)
            logger.debug("spend round: %d policies, %d queries", len(outcomes), sent)
        for body, outcome in outcomes:
            write(body, outcome, now=now)
        failures = [outcome for _, outcome in outcomes if outcome.readings is None]
        if failures:
            logger.warning("spend: %d of %d policies not read: %s", len(failures), len(outcomes), failures[0].message)
        return not failures

    async def run(self) -> None:
        failed = 0
        while True:
            try:
                ok = await asyncio.to_thread(self.round)
            except Exception as exc:  # the API server, not Prometheus: try again, never end the loop
                logger.warning("spend round failed: %s", exc)
                ok = False
            failed = 0 if ok else failed + 1
            await asyncio.sleep(self.interval if ok else min(self.interval, handle_route.RETRY.backoff(failed)))

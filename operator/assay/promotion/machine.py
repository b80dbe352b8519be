"""The promotion state machine, pure: from a policy's spec, status and commands to the next intent, and from a
gateway operation's outcome to the status that records it. No Kubernetes, no HTTP, no clock of its own.

The rules, in order of precedence:

1. A rollback always happens. Its intent is created whatever the policy's Ready condition, `spec.paused`, the
   dataset, the judge or the qualification stage; it replaces a pending promotion; nothing replaces it; it is
   retried until the gateway shows the last known good route again.
2. The baseline snapshot (status.lastKnownGood) is taken once, before the first write, together with the route
   it was read from (status.routeSource); restores always go there, even after spec.gateway changed.
3. An edited spec.gateway while a candidate serves (or is being promoted) first restores the old route at the
   old location, then snapshots the new one; with the baseline serving it simply snapshots the new one.
4. A promotion (automatic after a passed qualification, or `assay.dev/promote`) needs Ready, an unpaused
   policy, no budget freeze, the snapshot of the current location and no other intent. Canary steps advance
   after each soak.
"""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from assay import GROUP, clock
from assay.api import common, evaluation, routepolicy
from assay.controllers import conditions

ROLLBACK_ANNOTATION = f"{GROUP}/rollback"
PROMOTE_ANNOTATION = f"{GROUP}/promote"
REQUALIFY_ANNOTATION = f"{GROUP}/requalify"
COMMAND_ANNOTATIONS = (ROLLBACK_ANNOTATION, PROMOTE_ANNOTATION, REQUALIFY_ANNOTATION)
HANDLED_ALERTS_KEPT = 64

Status = routepolicy.RoutePolicyStatus
Spec = routepolicy.RoutePolicySpec


@dataclasses.dataclass(frozen=True)
class Notice:
    """An Event to post about the policy (type Normal or Warning)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


# --- where a route lives ------------------------------------------------------------------------------------


def route_name(spec: Spec) -> str:
    """The route applications call: spec.gateway.route, defaulting to spec.promptType."""
    return spec.gateway.route or spec.prompt_type


def backend_name(model_route: evaluation.ModelRoute) -> str:
    """The backendRef that serves a model in a weight-based route: `backend`, defaulting to the model name."""
    return model_route.backend or model_route.model


def owned_backends(spec: Spec) -> list[str]:
    """The backendRefs whose weights the policy owns: the baseline's and every candidate's."""
    return list(dict.fromkeys([backend_name(spec.baseline), *(backend_name(c) for c in spec.candidates)]))


def source_of(spec: Spec) -> routepolicy.RouteSource:
    """The gateway route the spec names, as status.routeSource records it."""
    return routepolicy.RouteSource(
        gateway=spec.gateway.to_wire(), route=route_name(spec), owned_backends=owned_backends(spec)
    )


def same_location(a: routepolicy.RouteSource, b: routepolicy.RouteSource) -> bool:
    """Whether two sources name the same route (the owned backends may grow: new candidates start at 0)."""
    return a.gateway == b.gateway and a.route == b.route


# --- reading the status -------------------------------------------------------------------------------------


def at_last_known_good(status: Status) -> bool:
    """The route is as the snapshot says (assay's last write or read), with no intent under way."""
    good, active = status.last_known_good, status.active_route
    return bool(good and active and good.fingerprint and good.fingerprint == active.fingerprint)


def candidate_serving(status: Status) -> bool:
    """A candidate has (or is getting) some of the traffic."""
    pending = status.pending
    return bool(
        (pending and pending.action == "Promote") or status.promoted_candidate or not at_last_known_good(status)
    )


def rollback_pending(status: Status) -> bool:
    return bool(status.pending and status.pending.action == "RollBack")


def promotions_frozen(status: Status, spec: Spec | None) -> bool:
    """A budget alert fires on a policy whose spec.budget.action is FreezePromotions (not a dry run): no promotion
    starts, and one under way holds its step, until it resolves (assay.promotion.budget)."""
    budget = spec.budget if spec is not None else None
    return bool(
        budget is not None
        and budget.action == "FreezePromotions"
        and not budget.dry_run
        and status.budget is not None
        and status.budget.firing
    )


def changed_externally(status: Status) -> bool:
    degraded = _condition(status, "Degraded")
    return bool(degraded and degraded.status == conditions.TRUE and degraded.reason == "RouteChangedExternally")


def _condition(status: Status, type_: str) -> common.Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def set_condition(
    status: Status, type_: str, value: str, reason: str, message: str, *, generation: int | None, now: datetime.datetime
) -> None:
    """Set one condition; lastTransitionTime moves only when its status flips."""
    wire = [c.to_wire() for c in status.conditions]
    updated = conditions.set_condition(
        wire,
        type=type_,
        status=value,
        reason=reason,
        message=message,
        observed_generation=generation,
        at=clock.stamp(now.replace(microsecond=0)),
    )
    status.conditions = [common.Condition.model_validate(c) for c in updated]


# --- intents ------------------------------------------------------------------------------------------------


def new_intent(
    action: Literal["Promote", "RollBack"],
    *,
    source: routepolicy.IntentSource,
    reason: str,
    now: datetime.datetime,
    candidate: str | None = None,
    started_at: datetime.datetime | None = None,
) -> routepolicy.PendingAction:
    return routepolicy.PendingAction(
        action=action,
        id=secrets.token_hex(6),
        source=source,
        reason=reason,
        candidate=candidate,
        requested_at=now,
        started_at=started_at or now,
    )


def request_rollback(
    status: Status,
    *,
    source: routepolicy.IntentSource,
    reason: str,
    now: datetime.datetime,
    started_at: datetime.datetime | None = None,
) -> bool:
    """Put a RollBack intent in `status` unless one is pending already; True if a new one was put.

    Nothing is put when there is no snapshot to restore, and for an alert when the route is already the last known
    good one (a command always restores: it is how a hand-edited route is put back)."""
    if rollback_pending(status) or status.last_known_good is None:
        return False
    if source == "Alert" and at_last_known_good(status) and not status.pending and not changed_externally(status):
        return False
    status.pending = new_intent("RollBack", source=source, reason=reason, now=now, started_at=started_at)
    return True


IN_FLIGHT_PHASES = frozenset({None, "Pending", "Qualifying", "Promoting", "Degraded"})


def in_flight(status: Status, spec: Spec | None) -> bool:
    """Whether the policy needs periodic reconciles: something is under way that no event of its own announces.
    Idle policies (settled, Ready, nothing pending) are reconciled only on events: a spec or annotation change,
    a verdict of one of their runs, a restart. Their route is still read back by its writer at the stated route
    check cadence, and alerts act at once.

    In flight: references not resolved (a Secret or ConfigMap may appear: assay does not watch them), no
    baseline snapshot yet, an intent pending, a qualification deciding or a promotion under way, a degraded
    route, and a Qualified policy whose automatic promotion has not been started yet."""
    ready = _condition(status, "Ready")
    if spec is None or ready is None or ready.status != "True":
        return True
    if status.pending is not None or status.last_known_good is None or status.phase in IN_FLIGHT_PHASES:
        return True
    return bool(
        status.phase == "Qualified"
        and spec.promotion.automatic
        and not spec.paused
        and status.best_candidate
        and not status.promoted_candidate
    )


def commands(annotations: Mapping[str, str], handled: Mapping[str, str]) -> dict[str, str]:
    """Manual commands not yet acted on: annotation name -> value. Each distinct value acts once, so a command
    set while the operator was down acts when it returns, and re-setting the same value does not."""
    out = {}
    for annotation in COMMAND_ANNOTATIONS:
        value = annotations.get(annotation)
        if value is not None and handled.get(annotation) != value:
            out[annotation] = value
    return out


@dataclasses.dataclass
class Plan:
    """The status after planning, and the Events to post."""

    status: Status
    notices: list[Notice]


def plan(
    status: Status,
    *,
    spec: Spec | None,
    annotations: Mapping[str, str],
    ready: bool,
    now: datetime.datetime,
) -> Plan:
    """Commands, gateway changes and verdicts -> intents. `spec` is None when it does not parse; `ready` is the
    policy's Ready condition (references resolved). Only rollbacks and requalification ignore both."""
    status = status.model_copy(deep=True)
    notices: list[Notice] = []
    handled = dict(status.handled_commands)
    todo = commands(annotations, handled)

    if REQUALIFY_ANNOTATION in todo:
        handled[REQUALIFY_ANNOTATION] = todo[REQUALIFY_ANNOTATION]
        status.qualification_epoch += 1
        status.phase = "Qualifying"
        status.best_candidate = None
        notices.append(
            Notice("Normal", "Requalify", "Requalification requested: new QualificationRuns will be created.")
        )

    if ROLLBACK_ANNOTATION in todo:
        handled[ROLLBACK_ANNOTATION] = todo[ROLLBACK_ANNOTATION]
        if not request_rollback(status, source="Command", reason="Manual", now=now) and not rollback_pending(status):
            notices.append(Notice("Warning", "RollbackRejected", "assay.dev/rollback: no baseline snapshot yet"))
    elif PROMOTE_ANNOTATION in todo and status.pending is None:
        handled[PROMOTE_ANNOTATION] = todo[PROMOTE_ANNOTATION]
        rejected = _promote_command(status, spec, todo[PROMOTE_ANNOTATION], ready=ready, now=now)
        if rejected:
            notices.append(Notice("Warning", "PromoteRejected", rejected))
    status.handled_commands = handled

    if spec is not None and status.route_source is not None and not same_location(status.route_source, source_of(spec)):
        old = status.route_source.gateway.get("kind", "gateway")
        if candidate_serving(status):
            if request_rollback(status, source="GatewayChange", reason="GatewayChanged", now=now):
                notices.append(
                    Notice(
                        "Warning",
                        "GatewayChanged",
                        f"spec.gateway changed while a candidate serves: restoring the last known good route on the "
                        f"old {old} route first, then snapshotting the new one.",
                    )
                )
        elif status.pending is None:
            status.last_known_good = None
            status.active_route = None
            status.route_source = None
            notices.append(
                Notice("Normal", "GatewayChanged", "spec.gateway changed: the new route will be snapshotted.")
            )

    if (
        spec is not None
        and ready
        and not spec.paused
        and status.pending is None
        and not promotions_frozen(status, spec)
        and spec.promotion.automatic
        and status.phase == "Qualified"
        and status.best_candidate
        and not status.promoted_candidate
        and status.route_source is not None
        and same_location(status.route_source, source_of(spec))
        and _candidate(spec, status.best_candidate) is not None
    ):
        status.pending = new_intent(
            "Promote", source="Automatic", reason="QualificationPassed", candidate=status.best_candidate, now=now
        )
    return Plan(status, notices)


def _promote_command(status: Status, spec: Spec | None, value: str, *, ready: bool, now: datetime.datetime) -> str:
    """Put a Promote intent for `assay.dev/promote=<value>`; the rejection message, or "" when put."""
    # "mini", "best", or either with "@<nonce>" so the same candidate can be promoted again later.
    wanted = value.split("@", 1)[0]
    if spec is None or not ready:
        return f"assay.dev/promote={wanted!r}: the policy is not Ready"
    if spec.paused:
        return f"assay.dev/promote={wanted!r}: the policy is paused (spec.paused)"
    if promotions_frozen(status, spec):
        return f"assay.dev/promote={wanted!r}: promotions are frozen while a budget alert fires (spec.budget)"
    if status.route_source is None or not same_location(status.route_source, source_of(spec)):
        return f"assay.dev/promote={wanted!r}: the route has not been snapshotted yet; try again shortly"
    target = status.best_candidate if wanted in ("", "true", "best") else wanted
    if _candidate(spec, target) is None:
        return f"assay.dev/promote={wanted!r}: no such candidate"
    status.pending = new_intent("Promote", source="Command", reason="Manual", candidate=target, now=now)
    return ""


def _candidate(spec: Spec, name: str | None) -> evaluation.Candidate | None:
    return next((c for c in spec.candidates if c.name == name), None)


# --- what the writer does next ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Operation:
    """The writer's next step for a policy: Snapshot, Promote, RollBack, Verify or Wait (until `due`)."""

    kind: Literal["Snapshot", "Promote", "RollBack", "Verify", "Wait", "Nothing"]
    due: datetime.datetime | None = None
    percent: int = 100
    candidate: evaluation.Candidate | None = None


def canary_steps(spec: Spec, *, supports_weights: bool) -> list[int]:
    return list(spec.promotion.steps) if spec.promotion.strategy == "Canary" and supports_weights else [100]


def next_operation(
    status: Status, spec: Spec | None, *, now: datetime.datetime, supports_weights: bool, urgent: bool = False
) -> Operation:
    """What the route writer should do for this policy now. `urgent` (a waiting alert) skips the backoff."""
    pending = status.pending
    if pending is not None and pending.action == "RollBack":
        if pending.retry_at and pending.retry_at > now and not urgent:
            return Operation("Wait", due=pending.retry_at)
        return Operation("RollBack")
    if pending is not None:
        if spec is None or spec.paused or promotions_frozen(status, spec):
            return Operation("Nothing")  # a paused (or budget-frozen) policy holds its promotion where it is
        candidate = _candidate(spec, pending.candidate)
        if candidate is None:
            return Operation("Promote")  # recorded as dropped
        steps = canary_steps(spec, supports_weights=supports_weights)
        step = min(int(pending.step or 0), len(steps) - 1)
        if step > 0 and status.step_started_at is not None:
            soaked = status.step_started_at + datetime.timedelta(seconds=spec.promotion.soak_seconds)
            if soaked > now:
                return Operation("Wait", due=soaked)
        if pending.retry_at and pending.retry_at > now:
            return Operation("Wait", due=pending.retry_at)
        return Operation("Promote", percent=steps[step], candidate=candidate)
    if spec is None:
        return Operation("Nothing")
    if status.last_known_good is None or status.route_source is None:
        return Operation("Snapshot")
    return Operation("Verify")


# --- recording outcomes -------------------------------------------------------------------------------------


def record_snapshot(
    status: Status, *, state: routepolicy.RouteState, source: routepolicy.RouteSource, describe: str
) -> list[Notice]:
    status.last_known_good = state
    status.active_route = state
    status.route_source = source
    return [Notice("Normal", "BaselineSnapshotted", f"Saved the live route ({describe}) as last known good.")]


def record_promote_step(
    status: Status,
    spec: Spec,
    *,
    state: routepolicy.RouteState,
    steps: list[int],
    describe: str,
    restarts_gateway: bool,
    generation: int | None,
    now: datetime.datetime,
) -> list[Notice]:
    """A promotion write landed (read back): the next canary step, or Promoted."""
    pending = status.pending
    assert pending is not None and pending.action == "Promote"
    candidate = _candidate(spec, pending.candidate)
    assert candidate is not None
    step = min(int(pending.step or 0), len(steps) - 1)
    status.active_route = state
    status.canary_step = step
    status.step_started_at = now
    if step + 1 < len(steps):
        pending.step = step + 1
        pending.attempts = 0
        pending.retry_at = None
        pending.last_error = None
        status.phase = "Promoting"
        return [Notice("Normal", "CanaryStep", f"{candidate.name} gets {steps[step]}% of {describe}")]
    status.pending = None
    status.promoted_candidate = candidate.name
    status.phase = "Promoted"
    message = f"Route switched to {candidate.model} ({candidate.name}) on {describe}."
    if restarts_gateway:
        message += " This gateway kind takes effect after LiteLLM restarts (rolled)."
    reason = pending.reason or "QualificationPassed"
    set_condition(status, "Promoted", conditions.TRUE, reason, message, generation=generation, now=now)
    set_condition(
        status,
        "RolledBack",
        conditions.FALSE,
        "Promoted",
        "The route serves the promoted candidate.",
        generation=generation,
        now=now,
    )
    _healthy(status, generation=generation, now=now)
    return [Notice("Normal", "Promoted", message)]


def drop_promotion(status: Status, *, why: str) -> list[Notice]:
    """A Promote intent that can no longer be carried out (its candidate was removed from the spec)."""
    status.pending = None
    return [Notice("Warning", "PromoteDropped", why)]


def record_rolled_back(
    status: Status, *, state: routepolicy.RouteState, describe: str, generation: int | None, now: datetime.datetime
) -> list[Notice]:
    """The last known good route is live again (read back)."""
    pending = status.pending
    assert pending is not None and pending.action == "RollBack"
    status.active_route = state
    status.pending = None
    status.promoted_candidate = None
    status.canary_step = None
    status.savings = None
    status.phase = "RolledBack"
    reason = pending.reason or "Manual"
    if pending.source == "Alert":
        status.last_alert = reason
    condition_reason = {
        "Alert": "DriftAlert",
        "GatewayChange": "GatewayChanged",
        "Watch": "QualityDrift",
        "Budget": "BudgetExceeded",
    }.get(pending.source or "", "Manual")
    message = f"Restored the last known good route ({state.model or 'baseline'}) on {describe}; trigger: {reason}."
    if pending.attempts:
        message += f" It took {pending.attempts + 1} attempts."
    set_condition(status, "RolledBack", conditions.TRUE, condition_reason, message, generation=generation, now=now)
    set_condition(status, "Promoted", conditions.FALSE, "RolledBack", message, generation=generation, now=now)
    _healthy(status, generation=generation, now=now)
    if pending.source == "GatewayChange":
        # Restored at the old location: the new one is snapshotted next.
        status.last_known_good = None
        status.active_route = None
        status.route_source = None
    return [Notice("Warning", "RolledBack", message)]


def record_failure(
    status: Status,
    *,
    what: str,
    reason: str,
    message: str,
    retryable: bool,
    backoff: float,
    generation: int | None,
    now: datetime.datetime,
) -> list[Notice]:
    """A gateway operation failed. A rollback is always retried (with bounded backoff); a promotion is retried
    only when the error is retryable, else dropped; a snapshot or check is simply tried again later."""
    pending = status.pending
    notices: list[Notice] = []
    keep_trying = retryable or (pending is not None and pending.action == "RollBack")
    if pending is not None and what in ("RollBack", "Promote"):
        pending.attempts += 1
        pending.last_error = message[:2048]
        if keep_trying:
            pending.retry_at = now + datetime.timedelta(seconds=backoff)
        else:
            status.pending = None
            notices.append(Notice("Warning", "PromoteFailed", f"gateway {what} failed for good: {message}"))
    text = f"gateway {what} failed: {message}" + (" (retrying with backoff)" if keep_trying else "")
    if what == "RollBack":
        text = f"rollback not yet done: {message}; retrying with backoff until the last known good route is live"
    degraded = _condition(status, "Degraded")
    first_rollback_failure = what == "RollBack" and pending is not None and pending.attempts == 1
    if first_rollback_failure or not (degraded and degraded.status == conditions.TRUE and degraded.reason == reason):
        notices.append(Notice("Warning", "RollbackFailing" if what == "RollBack" else "GatewayWriteFailed", text))
    set_condition(status, "Degraded", conditions.TRUE, reason, text, generation=generation, now=now)
    return notices


def record_verified(
    status: Status, *, live_fingerprint: str, describe: str, generation: int | None, now: datetime.datetime
) -> list[Notice]:
    """Compare the live route with what assay last set: a hand edit is reported, never overwritten."""
    active = status.active_route
    if active is None or not active.fingerprint:
        return []
    if live_fingerprint != active.fingerprint:
        message = (
            f"The route on {describe} was changed outside assay (expected {active.fingerprint}, found "
            f"{live_fingerprint}); assay will not overwrite it. Set assay.dev/rollback to restore the last known "
            "good route."
        )
        notices = [] if changed_externally(status) else [Notice("Warning", "RouteChangedExternally", message)]
        set_condition(
            status, "Degraded", conditions.TRUE, "RouteChangedExternally", message, generation=generation, now=now
        )
        return notices
    degraded = _condition(status, "Degraded")
    if degraded and degraded.status == conditions.TRUE:
        set_condition(
            status,
            "Degraded",
            conditions.FALSE,
            "GatewayHealthy",
            "The live route is as assay left it.",
            generation=generation,
            now=now,
        )
    return []


def _healthy(status: Status, *, generation: int | None, now: datetime.datetime) -> None:
    set_condition(
        status,
        "Degraded",
        conditions.FALSE,
        "GatewayHealthy",
        "The last gateway write succeeded.",
        generation=generation,
        now=now,
    )


# --- alerts -------------------------------------------------------------------------------------------------


def alert_key(fingerprint: str, starts_at: datetime.datetime) -> str:
    """One firing of one alert: Alertmanager's re-sends share it, a new firing of the same alert does not."""
    return f"{fingerprint}@{clock.stamp(starts_at)}"


def remember_alerts(status: Status, keys: list[str]) -> None:
    """The one alert de-duplication store: the newest firings acted on, in the policy's status (so it survives
    restarts and a change of leader)."""
    known = [k for k in status.handled_alerts if k not in keys]
    status.handled_alerts = [*known, *dict.fromkeys(keys)][-HANDLED_ALERTS_KEPT:]


def wire(status: Status) -> dict[str, Any]:
    """The status as the API stores it."""
    return status.to_wire()

"""Promotion and rollback of a RoutePolicy's gateway route.

The order is always: write the intent (status.pending) -> act on the gateway -> record the result and clear
the intent. An operator killed anywhere in between finds the intent on restart and finishes it, so the route
converges and the baseline snapshot (status.lastKnownGood) is never lost: it is taken before the first write
and never overwritten afterwards.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import Any

from assay import GROUP, kube, metrics
from assay.api import routepolicy
from assay.controllers import Logger, conditions, events, status
from assay.gateways import factory, interface

KIND = "RoutePolicy"
ROLLBACK_ANNOTATION = f"{GROUP}/rollback"
PROMOTE_ANNOTATION = f"{GROUP}/promote"
REQUALIFY_ANNOTATION = f"{GROUP}/requalify"
MAX_BACKOFF_SECONDS = 300.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _candidate(spec: routepolicy.RoutePolicySpec, name: str | None) -> Any:
    return next((c for c in spec.candidates if c.name == name), None)


def _set(desired: dict[str, Any], type_: str, status_: str, reason: str, message: str, generation: Any) -> None:
    desired["conditions"] = conditions.set_condition(
        desired.get("conditions"),
        type=type_,
        status=status_,
        reason=reason,
        message=message,
        observed_generation=generation,
    )


def commands(annotations: Mapping[str, str], handled: Mapping[str, str]) -> dict[str, str]:
    """Manual commands not yet acted on: annotation name -> value. Each distinct value acts once, so a
    command set while the operator was down acts when it returns, and re-setting the same value does not."""
    out = {}
    for annotation in (ROLLBACK_ANNOTATION, PROMOTE_ANNOTATION, REQUALIFY_ANNOTATION):
        value = annotations.get(annotation)
        if value is not None and handled.get(annotation) != value:
            out[annotation] = value
    return out


def converge(
    spec: routepolicy.RoutePolicySpec,
    desired: dict[str, Any],
    *,
    body: Mapping[str, Any],
    logger: Logger,
    current: dict[str, Any],
) -> None:
    """Snapshot the baseline route, act on commands and verdicts, finish any pending action, and notice routes
    changed by hand. Mutates `desired` (the status to be written); may write intermediate status itself, and
    then updates `current` (the status as the API holds it) to match."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    gateway = factory.for_policy(spec, namespace=namespace, api_client=kube.api_client())

    if not desired.get("lastKnownGood"):
        try:
            live = gateway.read()
        except interface.GatewayError as exc:
            _degraded(desired, exc, generation=generation, body=body, namespace=namespace, what="read")
            return
        state = live.to_state().to_wire()
        desired["lastKnownGood"] = state
        desired["activeRoute"] = state
        events.normal(body, "BaselineSnapshotted", f"Saved the live route ({gateway.describe()}) as last known good.")

    handled = dict(desired.get("handledCommands") or {})
    pending = dict(desired.get("pending") or {})
    todo = commands(meta.get("annotations") or {}, handled)
    if REQUALIFY_ANNOTATION in todo:
        handled[REQUALIFY_ANNOTATION] = todo[REQUALIFY_ANNOTATION]
        desired["qualificationEpoch"] = int(desired.get("qualificationEpoch") or 0) + 1
        desired["phase"] = "Qualifying"
        desired.pop("bestCandidate", None)
        events.normal(body, "Requalify", "Requalification requested: new QualificationRuns will be created.")
    if ROLLBACK_ANNOTATION in todo:
        handled[ROLLBACK_ANNOTATION] = todo[ROLLBACK_ANNOTATION]
        pending = {"action": "RollBack", "reason": "Manual", "requestedAt": _iso(_now()), "startedAt": _iso(_now())}
    elif PROMOTE_ANNOTATION in todo and not pending:
        handled[PROMOTE_ANNOTATION] = todo[PROMOTE_ANNOTATION]
        # "mini", "best", or either with "@<nonce>" so the same candidate can be promoted again later.
        wanted = todo[PROMOTE_ANNOTATION].split("@", 1)[0]
        target = desired.get("bestCandidate") if wanted in ("", "true", "best") else wanted
        if _candidate(spec, target) is None:
            events.warning(body, "PromoteRejected", f"assay.dev/promote={wanted!r}: no such candidate")
        else:
            pending = {"action": "Promote", "candidate": target, "reason": "Manual", "requestedAt": _iso(_now())}
    desired["handledCommands"] = handled

    if (
        not pending
        and spec.promotion.automatic
        and desired.get("phase") == "Qualified"
        and desired.get("bestCandidate")
        and not desired.get("promotedCandidate")
    ):
        pending = {
            "action": "Promote",
            "candidate": desired["bestCandidate"],
            "reason": "QualificationPassed",
            "requestedAt": _iso(_now()),
        }

    if pending:
        fresh = pending != (desired.get("pending") or {})
        desired["pending"] = pending
        if fresh:
            # The intent reaches the API before the gateway is touched: a restart finishes what was started.
            status.write(KIND, namespace, name, current, desired)
            # The caller's final write is a diff against `current`: without the intent in it, clearing the
            # intent after success would not reach the API, and the next reconcile would act a second time.
            current.clear()
            current.update(copy.deepcopy(desired))
        perform(spec, desired, gateway=gateway, body=body, logger=logger, resuming=not fresh)
        return

    _check_drift(gateway, desired, body=body, generation=generation)


def perform(
    spec: routepolicy.RoutePolicySpec,
    desired: dict[str, Any],
    *,
    gateway: interface.Gateway,
    body: Mapping[str, Any],
    logger: Logger,
    resuming: bool,
) -> None:
    """Carry out status.pending on the gateway; on success record the result and clear the intent."""
    meta = body["metadata"]
    namespace, generation = meta["namespace"], meta.get("generation")
    pending = desired["pending"]
    retry_at = _parse(pending.get("retryAt"))
    if retry_at and retry_at > _now():
        return
    try:
        if pending["action"] == "RollBack":
            _roll_back(desired, gateway=gateway, body=body, generation=generation)
        else:
            _promote(spec, desired, gateway=gateway, body=body, generation=generation, resuming=resuming)
    except interface.GatewayError as exc:
        attempts = int(pending.get("attempts") or 0) + 1
        if exc.retryable:
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(attempts, 8))
            pending.update(attempts=attempts, retryAt=_iso(_now() + datetime.timedelta(seconds=delay)))
        else:
            desired.pop("pending", None)
        _degraded(desired, exc, generation=generation, body=body, namespace=namespace, what=pending["action"])
        logger.warning("gateway %s failed (attempt %d): %s", pending["action"], attempts, exc.reason)


def _promote(
    spec: routepolicy.RoutePolicySpec,
    desired: dict[str, Any],
    *,
    gateway: interface.Gateway,
    body: Mapping[str, Any],
    generation: Any,
    resuming: bool,
) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    pending = desired["pending"]
    candidate = _candidate(spec, pending.get("candidate"))
    if candidate is None:
        desired.pop("pending", None)
        return
    steps = spec.promotion.steps if spec.promotion.strategy == "Canary" and gateway.supports_weights else [100]
    step = int(pending.get("step") or 0)
    if step > 0:
        started = _parse(desired.get("stepStartedAt"))
        if started and (_now() - started).total_seconds() < spec.promotion.soak_seconds:
            return  # soaking at the previous step
    percent = steps[step]
    active = desired.get("activeRoute")
    # A fresh promotion guards against hand edits; a resumed one may find its own earlier write live.
    expected = (
        None if resuming or not active else interface.RouteSnapshot.from_state(routepolicy.RouteState(**_snake(active)))
    )
    result = gateway.write(factory.target_for(spec, candidate=candidate, percent=percent), expected=expected)
    desired["activeRoute"] = result.to_state(candidate=candidate.name).to_wire()
    desired["canaryStep"] = step
    desired["stepStartedAt"] = _iso(_now())
    if step + 1 < len(steps):
        pending.update(step=step + 1, attempts=0)
        pending.pop("retryAt", None)
        desired["phase"] = "Promoting"
        events.normal(body, "CanaryStep", f"{candidate.name} gets {percent}% of {gateway.describe()}")
        return
    desired.pop("pending", None)
    desired["promotedCandidate"] = candidate.name
    desired["phase"] = "Promoted"
    message = f"Route switched to {candidate.model} ({candidate.name}) on {gateway.describe()}."
    if gateway.restarts_gateway:
        message += " This gateway kind takes effect after LiteLLM restarts (rolled)."
    _set(desired, "Promoted", conditions.TRUE, pending.get("reason") or "QualificationPassed", message, generation)
    _set(desired, "RolledBack", conditions.FALSE, "Promoted", "The route serves the promoted candidate.", generation)
    _set(desired, "Degraded", conditions.FALSE, "GatewayHealthy", "The last gateway write succeeded.", generation)
    events.normal(body, "Promoted", message)
    metrics.PROMOTIONS.labels(namespace=namespace, policy=name).inc()
    metrics.ACTIVE_ROUTE.labels(namespace=namespace, policy=name, model=candidate.model).set(1)
    metrics.ACTIVE_ROUTE.labels(namespace=namespace, policy=name, model=spec.baseline.model).set(0)


def _roll_back(
    desired: dict[str, Any], *, gateway: interface.Gateway, body: Mapping[str, Any], generation: Any
) -> None:
    pending = desired["pending"]
    good = desired.get("lastKnownGood")
    if not good:
        desired.pop("pending", None)
        return
    restored = gateway.restore(interface.RouteSnapshot.from_state(routepolicy.RouteState(**_snake(good))))
    desired["activeRoute"] = restored.to_state().to_wire()
    desired.pop("pending", None)
    desired.pop("promotedCandidate", None)
    desired.pop("canaryStep", None)
    desired["phase"] = "RolledBack"
    reason = pending.get("reason") or "Manual"
    desired["lastAlert"] = reason if reason != "Manual" else desired.get("lastAlert")
    message = (
        f"Restored the last known good route ({restored.model or 'baseline'}) on {gateway.describe()}; "
        f"trigger: {reason}."
    )
    _set(desired, "RolledBack", conditions.TRUE, "DriftAlert" if reason != "Manual" else "Manual", message, generation)
    _set(desired, "Promoted", conditions.FALSE, "RolledBack", message, generation)
    _set(desired, "Degraded", conditions.FALSE, "GatewayHealthy", "The last gateway write succeeded.", generation)
    events.warning(body, "RolledBack", message)
    metrics.ROLLBACKS.labels(reason="alert" if reason != "Manual" else "manual").inc()
    started = _parse(pending.get("startedAt"))
    if started:
        metrics.ROLLBACK_LATENCY.observe(max(0.0, (_now() - started).total_seconds()))
    if desired.get("savings"):
        desired.pop("savings", None)


def _check_drift(
    gateway: interface.Gateway, desired: dict[str, Any], *, body: Mapping[str, Any], generation: Any
) -> None:
    active = desired.get("activeRoute")
    if not active or not active.get("fingerprint"):
        return
    try:
        live = gateway.read()
    except interface.GatewayError as exc:
        _degraded(desired, exc, generation=generation, body=body, namespace=body["metadata"]["namespace"], what="read")
        return
    if live.fingerprint != active.get("fingerprint"):
        message = (
            f"The route on {gateway.describe()} was changed outside assay (expected {active.get('fingerprint')}, "
            f"found {live.fingerprint}); assay will not overwrite it. Set assay.dev/rollback to restore the last "
            "known good route."
        )
        if not conditions.is_true(desired.get("conditions"), "Degraded"):
            events.warning(body, "RouteChangedExternally", message)
        _set(desired, "Degraded", conditions.TRUE, "RouteChangedExternally", message, generation)
    elif conditions.is_true(desired.get("conditions"), "Degraded"):
        _set(desired, "Degraded", conditions.FALSE, "GatewayHealthy", "The live route is as assay left it.", generation)


def _degraded(
    desired: dict[str, Any],
    exc: interface.GatewayError,
    *,
    generation: Any,
    body: Mapping[str, Any],
    namespace: str,
    what: str,
) -> None:
    message = f"gateway {what} failed: {exc.message}" + (" (retrying with backoff)" if exc.retryable else "")
    if not conditions.is_true(desired.get("conditions"), "Degraded"):
        events.warning(body, "GatewayWriteFailed", message)
    _set(desired, "Degraded", conditions.TRUE, exc.reason, message, generation)
    metrics.GATEWAY_WRITE_FAILURES.labels(
        namespace=namespace, kind=body.get("spec", {}).get("gateway", {}).get("kind", "")
    ).inc()


def _snake(state: Mapping[str, Any]) -> dict[str, Any]:
    """A wire-form RouteState (camelCase) as model keyword arguments."""
    return routepolicy.RouteState.model_validate(dict(state)).model_dump()


def roll_back_now(body: Mapping[str, Any], *, reason: str, received_at: float, logger: Logger) -> bool:
    """Roll one policy back immediately (the alert path): intent, restore, record. True if a write happened.

    `received_at` is time.time() when the alert arrived; the alert-to-restored latency is observed from it.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    current = dict(body.get("status") or {})
    if not current.get("lastKnownGood"):
        logger.warning("alert %s for %s/%s: no last known good route yet; nothing to restore", reason, namespace, name)
        return False
    spec = routepolicy.RoutePolicySpec.model_validate(body["spec"])
    desired = dict(current)
    started = datetime.datetime.fromtimestamp(received_at, datetime.UTC)
    desired["pending"] = {
        "action": "RollBack",
        "reason": reason,
        "requestedAt": _iso(_now()),
        "startedAt": _iso(started),
    }
    status.write(KIND, namespace, name, current, desired)
    written = copy.deepcopy(desired)  # the status as the API now holds it, intent included
    gateway = factory.for_policy(spec, namespace=namespace, api_client=kube.api_client())
    perform(spec, desired, gateway=gateway, body=body, logger=logger, resuming=True)
    status.write(KIND, namespace, name, written, desired)
    events.warning(body, "DriftAlert", f"Alert {reason} matched spec.rollback.alertSelector; route restored.")
    return "pending" not in desired


def restore_on_delete(body: Mapping[str, Any], *, logger: Logger) -> None:
    """A deleted policy hands its route back: if anything but the last known good route is live (a promoted
    or canary candidate), restore the snapshot. Raises a retryable GatewayError while the gateway is down, so
    the deletion waits rather than leave a candidate serving with nobody watching it."""
    current = body.get("status") or {}
    good, active = current.get("lastKnownGood"), current.get("activeRoute")
    if not good or not active or (good.get("fingerprint") == active.get("fingerprint") and not current.get("pending")):
        return
    spec = routepolicy.RoutePolicySpec.model_validate(body["spec"])
    meta = body["metadata"]
    gateway = factory.for_policy(spec, namespace=meta["namespace"], api_client=kube.api_client())
    try:
        gateway.restore(interface.RouteSnapshot.from_state(routepolicy.RouteState(**_snake(good))))
    except interface.RouteNotFound:
        logger.info("route of deleted policy %s/%s is gone; nothing to restore", meta["namespace"], meta["name"])
        return
    metrics.ROLLBACKS.labels(reason="deleted").inc()
    logger.info("policy deleted: restored the last known good route on %s", gateway.describe())

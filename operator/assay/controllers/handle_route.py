"""Promotion and rollback I/O: the pure state machine (assay.promotion.machine) decides, the one route writer
(assay.promotion.writer) serializes, and this module does one policy's sync against its gateway.

The order is always: the intent is in status (written with a resourceVersion precondition) -> the writer of the
route's location acts on the gateway -> reads it back -> records the result and clears the intent in one guarded
write. An operator killed anywhere in between finds the intent on restart and finishes it; the baseline snapshot
(status.lastKnownGood) is taken before the first write and never overwritten while a candidate serves.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from assay import clock, httpclient, kube, metrics
from assay.api import routepolicy
from assay.controllers import events, status
from assay.gateways import factory, interface
from assay.promotion import machine, writer

KIND = "RoutePolicy"
logger = logging.getLogger("assay.route")


# How often a settled route is read back to notice hand edits (a stated cadence; hand edits are reported, never
# overwritten, so this bounds only how soon Degraded says so).
def check_interval() -> float:
    """ASSAY_ROUTE_CHECK_INTERVAL seconds (default 30), read at call time."""
    return float(os.environ.get("ASSAY_ROUTE_CHECK_INTERVAL", "30"))


# The one retry policy for gateway operations: bounded exponential backoff with jitter. A rollback is retried with
# it for as long as it takes; a promotion until the error is not retryable.
RETRY = httpclient.RetryPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=60.0)
CONFLICT_RETRIES = 5

_last_checked: dict[str, float] = {}


def _rollback_latency(pending: routepolicy.PendingAction, now: datetime.datetime) -> None:
    if pending.source == "Alert" and pending.started_at is not None:
        metrics.ROLLBACK_LATENCY.observe(max(0.0, (now - pending.started_at).total_seconds()))


@functools.cache
def route_writer() -> writer.RouteWriter:
    """The process's one route writer."""
    return writer.RouteWriter(sync)


def parse_spec(body: Mapping[str, Any]) -> routepolicy.RoutePolicySpec | None:
    try:
        return routepolicy.RoutePolicySpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError:
        return None


def location_of(namespace: str, status_: machine.Status, spec: routepolicy.RoutePolicySpec | None) -> str | None:
    """The writer location that holds the policy's route now: where its snapshot came from, else the spec's."""
    source = status_.route_source or (machine.source_of(spec) if spec is not None else None)
    if source is None:
        return None
    try:
        return factory.location_key(source, namespace=namespace)
    except pydantic.ValidationError:
        return None


def submit(body: Mapping[str, Any], *, urgent: bool = False) -> tuple[writer.PolicyRef, int] | None:
    """Queue a sync of the policy with the writer of its location; (ref, sequence) for waiting, or None when the
    policy names no usable location yet."""
    meta = body["metadata"]
    status_ = machine.Status.model_validate(body.get("status") or {})
    location = location_of(meta["namespace"], status_, parse_spec(body))
    if location is None:
        return None
    ref = writer.PolicyRef(meta["namespace"], meta["name"], meta["uid"])
    return ref, route_writer().submit(location, ref, urgent=urgent)


def sync(ref: writer.PolicyRef, urgent: bool) -> writer.Outcome:
    """One sync of one policy (the writer's job): snapshot, promote a step, roll back, or check the live route.
    Re-reads and recomputes on a resourceVersion conflict."""
    for _ in range(CONFLICT_RETRIES):
        try:
            return _sync_once(ref, urgent)
        except status.Conflict:
            continue
    return writer.Outcome(error="the policy kept changing under the writer", again_in=1.0)


def _sync_once(ref: writer.PolicyRef, urgent: bool) -> writer.Outcome:
    with status.locked(ref.uid):
        body = status.fresh(KIND, ref.namespace, ref.name, ref.uid)
        if body is None:
            route_writer().forget(ref.uid)
            return writer.Outcome()
        meta = body["metadata"]
        record = _Recorder(ref, body)
        before = machine.Status.model_validate(record.current)
        spec = parse_spec(body)
        now = clock.now()
        supports_weights = spec is not None and spec.gateway.kind in factory.WEIGHTED_KINDS
        operation = machine.next_operation(before, spec, now=now, supports_weights=supports_weights, urgent=urgent)
        intent = before.pending.id if before.pending else None
        if operation.kind == "Nothing":
            return writer.Outcome(intent=intent)
        if operation.kind == "Wait":
            assert operation.due is not None
            return writer.Outcome(intent=intent, again_in=max(0.05, (operation.due - now).total_seconds()))
        if operation.kind == "Verify" and not urgent:
            since = time.monotonic() - _last_checked.get(ref.uid, float("-inf"))
            if since < check_interval():
                return writer.Outcome(again_in=check_interval() - since)
        after = before.model_copy(deep=True)
        generation = meta.get("generation")
        try:
            notices, done = _act(operation, after, spec, body=body, record=record, now=now, generation=generation)
        except interface.GatewayError as exc:
            attempts = (after.pending.attempts if after.pending else 0) + 1
            delay = RETRY.backoff(min(attempts, 12))
            notices = machine.record_failure(
                after,
                what=operation.kind,
                reason=exc.reason,
                message=exc.message,
                retryable=exc.retryable,
                backoff=delay,
                generation=generation,
                now=now,
            )
            metrics.GATEWAY_WRITE_FAILURES.labels(namespace=ref.namespace, kind=_kind(spec, before)).inc()
            if operation.kind == "RollBack":
                metrics.ROLLBACK_ATTEMPTS_FAILED.labels(namespace=ref.namespace, policy=ref.name).inc()
                metrics.ROLLBACKS_PENDING.labels(namespace=ref.namespace, policy=ref.name).set(1)
            logger.warning("%s/%s: gateway %s failed: %s", ref.namespace, ref.name, operation.kind, exc.message)
            record.save(after)
            return writer.Outcome(intent=intent, error=exc.message, again_in=delay, then=_poster(body, notices))
        record.save(after)
        if operation.kind in ("Verify", "Snapshot"):
            _last_checked[ref.uid] = time.monotonic()
        location = location_of(ref.namespace, after, spec)
        again_in = 0.0 if after.pending is not None else check_interval()
        return writer.Outcome(
            intent=intent, done=done, again_in=again_in, location=location, then=_poster(body, notices)
        )


def _act(
    operation: machine.Operation,
    after: machine.Status,
    spec: routepolicy.RoutePolicySpec | None,
    *,
    body: Mapping[str, Any],
    record: _Recorder,
    now: datetime.datetime,
    generation: int | None,
) -> tuple[list[machine.Notice], bool]:
    """Carry out one operation on the gateway and record it in `after`; (notices, intent finished)."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    api_client = kube.api_client()
    if operation.kind == "Snapshot":
        assert spec is not None
        source = machine.source_of(spec)
        gateway = factory.for_source(source, namespace=namespace, api_client=api_client)
        live = gateway.read()
        return machine.record_snapshot(after, state=live.to_state(), source=source, describe=gateway.describe()), False
    if operation.kind == "Verify":
        assert after.route_source is not None
        gateway = factory.for_source(after.route_source, namespace=namespace, api_client=api_client)
        live = gateway.read()
        notices = machine.record_verified(
            after, live_fingerprint=live.fingerprint, describe=gateway.describe(), generation=generation, now=now
        )
        return notices, False
    if operation.kind == "RollBack":
        pending = after.pending
        assert pending is not None and after.last_known_good is not None and after.route_source is not None
        gateway = factory.for_source(after.route_source, namespace=namespace, api_client=api_client)
        good = interface.RouteSnapshot.from_state(after.last_known_good)
        restored = _read_back(gateway, gateway.restore(good))
        _rollback_latency(pending, now)
        notices = machine.record_rolled_back(
            after, state=restored.to_state(), describe=gateway.describe(), generation=generation, now=now
        )
        reason = {
            "Alert": "alert",
            "Deletion": "deleted",
            "GatewayChange": "gateway_change",
            "Watch": "quality_drift",
            "Budget": "budget",
        }.get(pending.source or "", "manual")
        metrics.ROLLBACKS.labels(reason=reason).inc()
        metrics.ROLLBACKS_PENDING.labels(namespace=namespace, policy=name).set(0)
        if spec is not None:
            metrics.ACTIVE_ROUTE.labels(namespace=namespace, policy=name, model=spec.baseline.model).set(1)
            for candidate in spec.candidates:
                metrics.ACTIVE_ROUTE.labels(namespace=namespace, policy=name, model=candidate.model).set(0)
        return notices, True
    # Promote
    pending = after.pending
    assert pending is not None and spec is not None
    if operation.candidate is None:
        return machine.drop_promotion(
            after, why=f"candidate {pending.candidate!r} is no longer in spec.candidates"
        ), True
    gateway = factory.for_policy(spec, namespace=namespace, api_client=api_client)
    steps = machine.canary_steps(spec, supports_weights=gateway.supports_weights)
    target = factory.target_for(spec, candidate=operation.candidate, percent=operation.percent)
    active = after.active_route
    # The first attempt of a fresh promotion guards against hand edits. It is recorded as started before the write:
    # a retry, or a restart after a write that landed unrecorded, may find its own write live, so it does not guard.
    expected = None
    if pending.attempts == 0 and not pending.step and active is not None:
        expected = interface.RouteSnapshot.from_state(active)
        pending.attempts = 1
        record.save(after)
    result = _read_back(gateway, gateway.write(target, expected=expected))
    notices = machine.record_promote_step(
        after,
        spec,
        state=result.to_state(candidate=operation.candidate.name),
        steps=steps,
        describe=gateway.describe(),
        restarts_gateway=gateway.restarts_gateway,
        generation=generation,
        now=now,
    )
    if after.pending is None:
        metrics.PROMOTIONS.labels(namespace=namespace, policy=name).inc()
        metrics.ACTIVE_ROUTE.labels(namespace=namespace, policy=name, model=operation.candidate.model).set(1)
        metrics.ACTIVE_ROUTE.labels(namespace=namespace, policy=name, model=spec.baseline.model).set(0)
    return notices, after.pending is None


def _read_back(gateway: interface.Gateway, written: interface.RouteSnapshot) -> interface.RouteSnapshot:
    """Read the route again after a write: only a read-back showing the wanted entries counts as done."""
    live = gateway.read()
    if live.fingerprint != written.fingerprint:
        raise interface.WriteNotApplied(
            f"{gateway.describe()}: the write was accepted but reading it back shows {live.fingerprint}, "
            f"not {written.fingerprint}"
        )
    return live


class _Recorder:
    """Writes a policy's status guarded by the resourceVersion it was read at, and keeps that version current
    across several writes of one sync."""

    def __init__(self, ref: writer.PolicyRef, body: Mapping[str, Any]) -> None:
        self._ref = ref
        self.current: dict[str, Any] = dict(body.get("status") or {})
        self._version: str | None = body["metadata"].get("resourceVersion")

    def save(self, after: machine.Status) -> None:
        desired = machine.wire(after)
        version = status.write(
            KIND, self._ref.namespace, self._ref.name, self.current, desired, resource_version=self._version
        )
        if version is not None:
            self._version = version
            self.current = desired


def _poster(body: Mapping[str, Any], notices: list[machine.Notice]) -> Callable[[], None] | None:
    """The sync's Events, posted by the writer once the location is free (None when there are none)."""
    return functools.partial(events.post_notices, body, notices) if notices else None


def _kind(spec: routepolicy.RoutePolicySpec | None, state: machine.Status) -> str:
    if state.route_source is not None:
        return str(state.route_source.gateway.get("kind", ""))
    return spec.gateway.kind if spec is not None else ""


def restore_on_delete(body: Mapping[str, Any], *, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """A deleted policy hands its route back: if anything but the last known good route is live (a promoted or
    canary candidate), a Deletion rollback goes through the route writer and must land before the finalizer is
    removed. Raises a retryable GatewayError while it has not (the deletion waits rather than leave a candidate
    serving with nobody watching it)."""
    meta = body["metadata"]
    ref = writer.PolicyRef(meta["namespace"], meta["name"], meta["uid"])
    with status.locked(ref.uid):
        fresh = status.fresh(KIND, ref.namespace, ref.name, ref.uid)
        if fresh is None:
            return
        state = machine.Status.model_validate(fresh.get("status") or {})
        if state.last_known_good is None or state.route_source is None:
            return
        if not machine.candidate_serving(state) and not machine.rollback_pending(state):
            return
        if machine.request_rollback(state, source="Deletion", reason="PolicyDeleted", now=clock.now()):
            _Recorder(ref, fresh).save(state)
        intent = state.pending.id if state.pending else None
    queued = submit({**fresh, "status": machine.wire(state)}, urgent=True)
    if queued is None:
        return
    outcome = route_writer().wait(ref.uid, after=queued[1], intent=intent, timeout=30.0)
    if outcome is None or not outcome.done:
        why = outcome.error if outcome and outcome.error else "the rollback has not landed yet"
        raise interface.GatewayUnreachable(f"restoring the route before deletion: {why}")
    logger.info("policy deleted: restored the last known good route of %s/%s", ref.namespace, ref.name)

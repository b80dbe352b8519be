"""Drift alerts to rollbacks, budget alerts to their actions: the webhook's callbacks, bridging to the one route
writer.

A delivery is answered 200 only when every policy it matched shows its last known good route (restored now, or
already): Alertmanager does not retry a 200. Anything else is an error status, which it retries. Many alerts for
one policy, in one delivery or in a burst, make one rollback intent and one DriftAlert Event.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import pydantic

from assay import GROUP, VERSION, clock, kube, metrics
from assay.alerts import Match
from assay.alerts.matching import BudgetMatch
from assay.controllers import events, handle_route, status
from assay.promotion import budget, machine

logger = logging.getLogger("assay.alerts")

# How long one delivery waits for its rollbacks to land before answering an error (Alertmanager then retries).
WAIT_SECONDS = float(os.environ.get("ASSAY_ALERT_WAIT_SECONDS", "8"))

Result = Literal["restored", "already", "duplicate", "failed", "gone"]


class PolicyIndex:
    """The RoutePolicies the operator watches, from one LIST at start (`fill`) and kopf's watch events after it
    (metadata and spec only). Not warm until the LIST is in: before that the webhook answers 503."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        self._warm = threading.Event()

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        with self._lock:
            if event_type == "DELETED":
                self._items.pop(uid, None)
                self._deleted.add(uid)
            else:
                self._items[uid] = {"metadata": dict(meta), "spec": dict(body.get("spec") or {})}

    def fill(self, listed: Sequence[Mapping[str, Any]]) -> None:
        """Add a LIST's items the watch has not reported yet (the watch's copy is never older), then be warm."""
        with self._lock:
            for body in listed:
                meta = body.get("metadata") or {}
                uid = meta.get("uid")
                if uid and uid not in self._items and uid not in self._deleted:
                    self._items[uid] = {"metadata": dict(meta), "spec": dict(body.get("spec") or {})}
        self._warm.set()

    def warm(self) -> bool:
        return self._warm.is_set()

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())


INDEX = PolicyIndex()


def list_policies(namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """One LIST of the watched RoutePolicies (to warm the index)."""
    api = kube.custom()
    if not namespaces:
        result: Any = api.list_cluster_custom_object(
            GROUP, VERSION, "routepolicies", _request_timeout=kube.REQUEST_TIMEOUT
        )
        return list(result.get("items", []))
    items: list[dict[str, Any]] = []
    for namespace in namespaces:
        result = api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "routepolicies", _request_timeout=kube.REQUEST_TIMEOUT
        )
        items.extend(result.get("items", []))
    return items


@dataclasses.dataclass(frozen=True)
class PolicyAlerts:
    """The matches of one delivery for one policy (by uid)."""

    namespace: str
    name: str
    uid: str
    alert_names: tuple[str, ...]
    keys: tuple[str, ...]
    first_alert: str


def group(matches: Sequence[Match]) -> list[PolicyAlerts]:
    """One entry per matched policy, whatever the number of alerts that matched it."""
    by_uid: dict[str, list[Match]] = collections.defaultdict(list)
    for item in matches:
        by_uid[item.uid].append(item)
    return [
        PolicyAlerts(
            namespace=items[0].namespace,
            name=items[0].name,
            uid=uid,
            alert_names=tuple(dict.fromkeys(m.alert_name for m in items)),
            keys=tuple(dict.fromkeys(machine.alert_key(m.fingerprint, m.starts_at) for m in items)),
            first_alert=items[0].alert_name or "alert",
        )
        for uid, items in by_uid.items()
    ]


def roll_back(alerts: PolicyAlerts, *, received_wall: float, wait_seconds: float = WAIT_SECONDS) -> Result:
    """Ask for the policy's rollback and wait for it: 'restored', 'already' (nothing to restore), 'duplicate'
    (these firings were acted on before and nothing is pending), 'gone' (deleted or re-created: a new policy
    is not this alert's), or 'failed' (not restored yet; the writer keeps retrying)."""
    with status.locked(alerts.uid, timeout=wait_seconds):
        body = status.fresh("RoutePolicy", alerts.namespace, alerts.name, alerts.uid)
        if body is None:
            return "gone"
        state = machine.Status.model_validate(body.get("status") or {})
        new_keys = [key for key in alerts.keys if key not in state.handled_alerts]
        pending_before = machine.rollback_pending(state)
        if not new_keys and not pending_before:
            return "duplicate"
        started = datetime.datetime.fromtimestamp(received_wall, datetime.UTC)
        alert_name = ", ".join(alerts.alert_names)[:200] or alerts.first_alert
        created = machine.request_rollback(
            state, source="Alert", reason=alerts.first_alert, now=clock.now(), started_at=started
        )
        if new_keys:
            machine.remember_alerts(state, new_keys)
        if created or new_keys:
            status.write(
                "RoutePolicy",
                alerts.namespace,
                alerts.name,
                dict(body.get("status") or {}),
                machine.wire(state),
                resource_version=body["metadata"].get("resourceVersion"),
            )
        if not machine.rollback_pending(state):
            return "already"
        intent = state.pending.id if state.pending else None
    restored, outcome = _await_rollback(body, state, intent, wait_seconds=wait_seconds)
    if created:
        if restored:
            events.warning(
                body, "DriftAlert", f"Alert {alert_name} matched spec.rollback.alertSelector; the route was restored."
            )
        else:
            why = outcome.error if outcome is not None and outcome.error else "no answer from the gateway yet"
            events.warning(
                body,
                "DriftAlert",
                f"Alert {alert_name} matched spec.rollback.alertSelector; restoring the route failed so far ({why}) "
                "and is retried until it lands.",
            )
    return "restored" if restored else "failed"


def _await_rollback(
    body: Mapping[str, Any], state: machine.Status, intent: str | None, *, wait_seconds: float
) -> tuple[bool, Any]:
    """Hand the policy's pending rollback to the route writer and wait for it: (restored, the writer's outcome or
    None when it did not answer in time, in which case the status tells whether the rollback landed)."""
    queued = handle_route.submit({**body, "status": machine.wire(state)}, urgent=True)
    if queued is None:
        return False, None
    ref, sequence = queued
    outcome = handle_route.route_writer().wait(ref.uid, after=sequence, intent=intent, timeout=wait_seconds)
    if outcome is not None:
        return bool(outcome.done), outcome
    meta = body["metadata"]
    latest = status.fresh("RoutePolicy", meta["namespace"], meta["name"], meta["uid"])
    settled = machine.Status.model_validate((latest or {}).get("status") or {})
    restored = latest is not None and not machine.rollback_pending(settled) and machine.at_last_known_good(settled)
    return restored, None


def act_on_budget(entry: BudgetMatch, *, wait_seconds: float = WAIT_SECONDS) -> Result:
    """Record a budget alert and take the policy's spec.budget action (assay.promotion.budget). 'restored' when
    its rollback landed, 'failed' when it has not yet (Alertmanager retries; the writer keeps at it), 'duplicate'
    for a repeat, 'already' for anything else acted on, 'gone' for a deleted policy."""
    with status.locked(entry.uid, timeout=wait_seconds):
        body = status.fresh("RoutePolicy", entry.namespace, entry.name, entry.uid)
        if body is None:
            return "gone"
        try:
            spec = machine.Spec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError:
            return "already"  # admitted but refused by the models: Ready says why; nothing to act with
        if spec.budget is None:
            return "already"
        state = machine.Status.model_validate(body.get("status") or {})
        now = clock.now()
        applied = budget.apply_alert(
            state,
            spec,
            trigger=entry.trigger,  # type: ignore[arg-type]
            alert=entry.alert_name or "budget alert",
            key=machine.alert_key(entry.fingerprint, entry.starts_at),
            firing=entry.firing,
            since=entry.starts_at,
            generation=body["metadata"].get("generation"),
            now=now,
        )
        if applied.changed:
            status.write(
                "RoutePolicy",
                entry.namespace,
                entry.name,
                dict(body.get("status") or {}),
                machine.wire(state),
                resource_version=body["metadata"].get("resourceVersion"),
            )
        intent = state.pending.id if state.pending else None
    events.post_notices(body, applied.notices)
    if applied.action is not None:
        metrics.BUDGET_ACTIONS.labels(
            namespace=entry.namespace,
            policy=entry.name,
            trigger=entry.trigger,
            action=applied.action,
            dry_run=str(spec.budget.dry_run).lower(),
        ).inc()
        logger.warning(
            "%s/%s: budget alert %s (%s): %s",
            entry.namespace,
            entry.name,
            entry.alert_name,
            entry.trigger,
            applied.action,
        )
    if applied.intent == "RollBack":
        restored, _ = _await_rollback(body, state, intent, wait_seconds=wait_seconds)
        return "restored" if restored else "failed"
    if applied.intent == "Promote":
        handle_route.submit({**body, "status": machine.wire(state)}, urgent=True)
    if not applied.changed and entry.firing:
        return "duplicate"
    return "already"


@dataclasses.dataclass
class DeliveryOutcome:
    """What the webhook answers: restored now, already restored, duplicates, and the policies not restored."""

    restored: list[str]
    already: int
    duplicate: int
    failed: list[str]


def callbacks(namespaces: Sequence[str]) -> tuple[Any, Any, Any]:
    """(list_policies, on_matches, ready) for assay.alerts.make_app."""

    async def policies() -> list[dict[str, Any]]:
        return INDEX.items()

    async def on_matches(matches: list[Match | BudgetMatch], received_at: float) -> DeliveryOutcome:
        received_wall = time.time() - (time.monotonic() - received_at)
        grouped = group([m for m in matches if isinstance(m, Match)])
        budgets = [m for m in matches if isinstance(m, BudgetMatch)]
        results = await asyncio.gather(
            *(asyncio.to_thread(_safe_roll_back, entry, received_wall) for entry in grouped),
            *(asyncio.to_thread(_safe_budget, entry) for entry in budgets),
        )
        outcome = DeliveryOutcome(restored=[], already=0, duplicate=0, failed=[])
        entries: list[PolicyAlerts | BudgetMatch] = [*grouped, *budgets]
        for entry, result in zip(entries, results, strict=True):
            where = f"{entry.namespace}/{entry.name}"
            if result == "restored":
                outcome.restored.append(where)
            elif result == "failed":
                outcome.failed.append(where)
            elif result == "duplicate":
                outcome.duplicate += 1
            else:
                outcome.already += 1
        return outcome

    def ready() -> bool:
        return INDEX.warm()

    return policies, on_matches, ready


def _safely(act: Callable[[], Result], what: str, entry: PolicyAlerts | BudgetMatch) -> Result:
    """`act()` with a few tries on write conflicts; anything else is 'failed' (Alertmanager retries), logged."""
    try:
        for _ in range(3):
            try:
                return act()
            except status.Conflict:
                continue
        return "failed"
    except status.LockTimeout as exc:
        logger.warning("%s for %s/%s: %s; Alertmanager will retry", what, entry.namespace, entry.name, exc)
        return "failed"
    except Exception:
        logger.exception(
            "%s for %s/%s could not be acted on; Alertmanager will retry", what, entry.namespace, entry.name
        )
        return "failed"


def _safe_roll_back(entry: PolicyAlerts, received_wall: float) -> Result:
    return _safely(lambda: roll_back(entry, received_wall=received_wall), "alert", entry)


def _safe_budget(entry: BudgetMatch) -> Result:
    return _safely(lambda: act_on_budget(entry), "budget alert", entry)

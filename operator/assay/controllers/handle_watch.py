"""Live samples to the watch state, and a proven drop to a rollback through the one route writer.

The recorder (assay.watch.recorder) hands each sample here; a bounded queue and a few workers judge samples
(assay.watch.judging, the evaluator's pair code) and record them in status.watch under the policy's lock,
guarded by its resourceVersion (assay.watch.state decides). On a proven drop: RollBack puts a RollBack intent
with reason QualityDrift (assay.promotion.machine.request_rollback, source Watch) and submits it to the route
writer at once; HoldForApproval only sets the condition and waits for assay.dev/rollback. Either way the
QualityDrift condition, an Event and assay_quality_drift_total say so. Conditions Watched True/False say
whether the route is watched now and why not (SamplerStarved, BudgetExhausted, JudgeErrors), refreshed by
every sample and by `check` on a timer. Sample text is never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import pydantic

from assay import clock, kube, metrics
from assay.api import routepolicy
from assay.controllers import conditions, events, handle_route, status, watch_evidence
from assay.gateways import kube as gateway_kube
from assay.promotion import machine
from assay.watch import drift, evidence, judging, state

logger = logging.getLogger("assay.watch")
KIND = "RoutePolicy"
QUEUE_SIZE = 64
# Samples judged at once (each waits on a baseline replay and the judge, so it is I/O, not CPU); one route's
# samples are judged one at a time, so its daily caps are checked against every sample before it.
WORKERS = int(os.environ.get("ASSAY_WATCH_WORKERS", "16"))


@dataclasses.dataclass(frozen=True)
class Watched:
    """A promoted route under watch: where the sampler should look and how much to take."""

    namespace: str
    name: str
    uid: str
    route: str
    group: str
    rate: float
    candidate: str


def watched_of(body: Mapping[str, Any]) -> Watched | None:
    """The watch a policy asks for now: spec.watch set and a candidate promoted (all steps) with no rollback
    pending and no drift proven yet; None otherwise."""
    meta = body.get("metadata") or {}
    try:
        spec = routepolicy.RoutePolicySpec.model_validate(body.get("spec") or {})
        current = machine.Status.model_validate(body.get("status") or {})
    except pydantic.ValidationError:
        return None
    active = current.active_route
    if spec.watch is None or current.phase != "Promoted" or not current.promoted_candidate or active is None:
        return None
    if machine.rollback_pending(current) or not active.model or (current.watch and current.watch.alarmed_at):
        return None
    return Watched(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        route=machine.route_name(spec),
        group=active.model,
        rate=spec.watch.sample_rate,
        candidate=current.promoted_candidate,
    )


class WatchIndex:
    """The watched routes, from kopf's watch events on RoutePolicies (full bodies, status included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Watched] = {}

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        uid = (body.get("metadata") or {}).get("uid")
        if not uid:
            return
        watched = None if event_type == "DELETED" else watched_of(body)
        with self._lock:
            if watched is None:
                self._items.pop(uid, None)
            else:
                self._items[uid] = watched

    def find(self, namespace: str, name: str) -> Watched | None:
        with self._lock:
            return next((w for w in self._items.values() if (w.namespace, w.name) == (namespace, name)), None)

    def sampling(self) -> dict[str, dict[str, Any]]:
        """What the gateway's sampler takes, by the route name applications call."""
        with self._lock:
            return {
                w.route: {"group": w.group, "rate": w.rate, "policy": f"{w.namespace}/{w.name}"}
                for w in self._items.values()
            }


INDEX = WatchIndex()


class Worker:
    """A bounded queue of samples and the tasks judging them. Start it on the operator's event loop."""

    def __init__(self, *, queue_size: int = QUEUE_SIZE, workers: int = WORKERS) -> None:
        self._queue: asyncio.Queue[judging.Sample] = asyncio.Queue(maxsize=queue_size)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._seq = 0
        self._routes: dict[tuple[str, str], asyncio.Lock] = {}

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"assay-watch-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def accept(self, sample: judging.Sample) -> str:
        """'queued', 'ignored' (not a watched promoted arm) or 'dropped' (the queue is full)."""
        watched = INDEX.find(sample.namespace, sample.policy)
        if watched is None or watched.group != sample.group:
            metrics.WATCH_SAMPLES.labels(namespace=sample.namespace, policy=sample.policy, outcome="ignored").inc()
            return "ignored"
        try:
            self._queue.put_nowait(sample)
        except asyncio.QueueFull:
            metrics.WATCH_SAMPLES.labels(namespace=sample.namespace, policy=sample.policy, outcome="dropped").inc()
            return "dropped"
        return "queued"

    async def _run(self) -> None:
        while True:
            sample = await self._queue.get()
            self._seq += 1
            seq = self._seq
            route = self._routes.setdefault((sample.namespace, sample.policy), asyncio.Lock())
            try:
                async with route:  # one route's samples in turn: its caps see each sample before the next
                    await process(sample, seq=seq)
            except Exception as exc:
                logger.warning("watch sample for %s/%s failed: %s", sample.namespace, sample.policy, type(exc).__name__)
            finally:
                self._queue.task_done()


def _settings(spec: routepolicy.RoutePolicySpec) -> state.Settings | None:
    if spec.watch is None:
        return None
    try:
        return state.Settings.from_spec(spec.watch, qualification_margin=spec.qualification.test.margin)
    except drift.DriftSettingsError:
        return None


def _promoted_at(current: machine.Status) -> datetime.datetime | None:
    promoted = next((c for c in current.conditions if c.type == "Promoted" and c.status == "True"), None)
    return promoted.last_transition_time if promoted is not None else None


@dataclasses.dataclass
class _Read:
    body: dict[str, Any]
    spec: routepolicy.RoutePolicySpec
    status: machine.Status
    settings: state.Settings
    watch: routepolicy.WatchStatus


def _read(namespace: str, name: str, uid: str | None) -> _Read | None:
    """The policy and its watch of the current promotion, or None when it is not watched now."""
    body = status.fresh(KIND, namespace, name, uid)
    if body is None or watched_of(body) is None:
        return None
    spec = routepolicy.RoutePolicySpec.model_validate(body.get("spec") or {})
    current = machine.Status.model_validate(body.get("status") or {})
    settings, promoted_at = _settings(spec), _promoted_at(current)
    if settings is None or promoted_at is None or current.promoted_candidate is None:
        return None
    watch = state.for_promotion(
        current.watch, candidate=current.promoted_candidate, promoted_at=promoted_at, settings=settings
    )
    return _Read(body, spec, current, settings, watch)


async def process(sample: judging.Sample, *, seq: int) -> None:
    """Judge one sample if the caps admit it, and record the outcome (one sample, one guarded status write)."""
    watched = INDEX.find(sample.namespace, sample.policy)
    if watched is None:
        return
    read = await asyncio.to_thread(_read, sample.namespace, sample.policy, watched.uid)
    if read is None:
        return
    refused = state.admit(read.watch, read.settings, now=clock.now())
    if refused is not None:
        outcome = {"BudgetExhausted": "over_budget", "DailySampleCap": "capped"}.get(refused, "ignored")
        metrics.WATCH_SAMPLES.labels(namespace=sample.namespace, policy=sample.policy, outcome=outcome).inc()
        return
    reader = gateway_kube.secret_reader(kube.api_client())
    judged = await judging.judge(
        read.spec, candidate=read.watch.candidate or "", sample=sample, read_secret=reader, seq=seq
    )
    outcome = "judged" if judged.score is not None else "judge_error"
    metrics.WATCH_SAMPLES.labels(namespace=sample.namespace, policy=sample.policy, outcome=outcome).inc()
    metrics.WATCH_COST.labels(namespace=sample.namespace, policy=sample.policy).inc(judged.cost_usd)
    await asyncio.to_thread(_record_with_retries, sample.namespace, sample.policy, watched.uid, judged)


def _record_with_retries(namespace: str, name: str, uid: str, judged: judging.Judged) -> None:
    for _ in range(5):
        try:
            _record(namespace, name, uid, judged)
            return
        except status.Conflict:
            continue
    logger.warning("watch of %s/%s: the policy kept changing; one sample was not recorded", namespace, name)


def _record(namespace: str, name: str, uid: str, judged: judging.Judged | None) -> None:
    """Record one judged sample (or, with None, only refresh the Watched condition) and act on a proven drop."""
    with status.locked(uid):
        read = _read(namespace, name, uid)
        if read is None:
            return
        now = clock.now()
        before = evidence.snapshot(read.watch)
        alarmed = judged is not None and state.record(
            read.watch, read.settings, score=judged.score, cost_usd=judged.cost_usd, now=now
        )
        after = read.status.model_copy(deep=True)
        after.watch = read.watch
        generation = read.body["metadata"].get("generation")
        verdict = state.verdict(read.watch, read.settings, now=now)
        was = next((c for c in after.conditions if c.type == "Watched"), None)
        machine.set_condition(
            after,
            "Watched",
            conditions.TRUE if verdict.reason is None else conditions.FALSE,
            verdict.reason or "Watching",
            verdict.message,
            generation=generation,
            now=now,
        )
        rollback = False
        if alarmed:
            message = state.drift_message(read.watch)
            hold = read.spec.watch is not None and read.spec.watch.on_drift == "HoldForApproval"
            if hold:
                message += "; spec.watch.onDrift is HoldForApproval: set the assay.dev/rollback annotation to roll back"
            machine.set_condition(
                after, "QualityDrift", conditions.TRUE, "QualityDrift", message, generation=generation, now=now
            )
            rollback = not hold and machine.request_rollback(after, source="Watch", reason="QualityDrift", now=now)
        status.write(
            KIND,
            namespace,
            name,
            dict(read.body.get("status") or {}),
            machine.wire(after),
            resource_version=read.body["metadata"].get("resourceVersion"),
        )
    _keep_evidence(read, before, judged, now=now, uid=uid, alarmed=alarmed)
    if read.watch.e_value is not None:
        metrics.WATCH_E_VALUE.labels(namespace=namespace, policy=name).set(read.watch.e_value)
    if was is not None and was.reason != (verdict.reason or "Watching") and verdict.reason is not None:
        events.warning(read.body, verdict.reason, verdict.message)
    if alarmed:
        action = "rollback" if rollback else "hold"
        metrics.QUALITY_DRIFTS.labels(namespace=namespace, policy=name, action=action).inc()
        events.warning(read.body, "QualityDrift", state.drift_message(read.watch))
        logger.warning(
            "%s/%s: live quality drift proven at sample %s (%s)", namespace, name, read.watch.alarmed_at, action
        )
    if rollback:
        handle_route.submit({**read.body, "status": machine.wire(after)}, urgent=True)


def _keep_evidence(
    read: _Read,
    before: dict[str, Any],
    judged: judging.Judged | None,
    *,
    now: datetime.datetime,
    uid: str,
    alarmed: bool,
) -> None:
    """Batch the sample just recorded (if the detector took its score) for the watch's evidence, and store the
    batch when due; a proven drift stores at once, so the alarm's evidence is kept."""
    consumed = judged is not None and judged.score is not None and read.watch.samples > before["samples"]
    if consumed and judged is not None and judged.score is not None and read.watch.promoted_at is not None:
        meta = read.body["metadata"]
        watch_evidence.STORE.add(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=uid,
            candidate=read.watch.candidate or "",
            promoted_at=read.watch.promoted_at,
            settings=read.settings,
            before=before,
            sample=evidence.sample_after(read.watch, t=now, score=judged.score),
        )
    watch_evidence.STORE.flush(uid, force=alarmed)


def check(body: Mapping[str, Any]) -> None:
    """Refresh the Watched condition of a watched policy without a sample (starvation shows this way)."""
    meta = body["metadata"]
    for _ in range(3):
        try:
            _record(meta["namespace"], meta["name"], meta["uid"], None)
            return
        except status.Conflict:
            continue

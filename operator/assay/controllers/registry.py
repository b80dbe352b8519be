"""Every kopf registration in one place. Handlers are thin: they hand the body to a handle_* module."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from assay import GROUP, VERSION, kube, metrics
from assay.controllers import (
    Logger,
    handle_alert,
    handle_qualificationrun,
    handle_route,
    handle_routepolicy,
    handle_watch,
    status,
)
from assay.gateways import interface

KOPF_PREFIX = f"kopf.{GROUP}"
# How often every object is reconciled even when nothing changed (level-based: it notices missing Secrets
# that appeared, Jobs that progressed, routes edited by hand).
RECONCILE_INTERVAL = float(os.environ.get("ASSAY_RECONCILE_INTERVAL", "10"))
# Idle policies (nothing in flight, assay.promotion.machine.in_flight) are reconciled on events, and re-checked
# only this rarely: a Secret or ConfigMap they reference may be deleted without an event assay sees.
IDLE_RESYNC_INTERVAL = float(os.environ.get("ASSAY_IDLE_RESYNC_INTERVAL", "600"))
# How often a watched route's Watched condition is refreshed when no sample comes (starvation).
WATCH_CHECK_INTERVAL = float(os.environ.get("ASSAY_WATCH_CHECK_INTERVAL", "60"))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf's own bookkeeping lives under kopf.assay.dev/, not assay.dev/: kopf leaves every annotation under
    # its storage prefix out of its diff, and the user's commands (assay.dev/promote, /rollback, /requalify)
    # must trigger the update handler at once instead of waiting for the next timer.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = int(os.environ.get("ASSAY_WORKERS", "16"))


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Log in with the same credentials assay's own client uses (service account, or KUBECONFIG)."""
    configuration = kube.load_configuration()
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _sep, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or ("Bearer" if token else None),
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def _guarded(kind: str, uid: str, fn: Any, body: Mapping[str, Any], logger: Logger) -> None:
    """Reconcile one object under its lock (never awaited without a timeout), from a fresh read; a status write
    that lost a race (409) is recomputed from a new read."""
    meta = body["metadata"]
    for _ in range(3):
        with status.locked(uid):
            fresh = status.fresh(kind, meta["namespace"], meta["name"], uid)
            if fresh is None:
                return
            try:
                fn(fresh, logger=logger)
                return
            except status.Conflict:
                continue
            except Exception:
                metrics.RECONCILE_ERRORS.labels(kind=kind).inc()
                raise
    raise kopf.TemporaryError(f"{kind} {meta['namespace']}/{meta['name']} kept changing; retrying", delay=1)


@kopf.on.resume(GROUP, VERSION, "routepolicies")
@kopf.on.create(GROUP, VERSION, "routepolicies")
@kopf.on.update(GROUP, VERSION, "routepolicies")
def routepolicy_changed(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("RoutePolicy", uid, handle_routepolicy.reconcile, body, logger)


def _policy_in_flight(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    """Only policies with work under way tick (assay.promotion.machine.in_flight); kopf stops an idle policy's
    timer and starts it again when an event makes the policy in flight."""
    return handle_routepolicy.in_flight(spec, status)


@kopf.timer(GROUP, VERSION, "routepolicies", interval=RECONCILE_INTERVAL, sharp=False, when=_policy_in_flight)
def routepolicy_tick(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("RoutePolicy", uid, handle_routepolicy.reconcile, body, logger)


def _policy_idle(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    return not handle_routepolicy.in_flight(spec, status)


@kopf.timer(GROUP, VERSION, "routepolicies", interval=IDLE_RESYNC_INTERVAL, sharp=False, when=_policy_idle)
def routepolicy_resync(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("RoutePolicy", uid, handle_routepolicy.reconcile, body, logger)


@kopf.on.event(GROUP, VERSION, "routepolicies")
async def routepolicy_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Keep the alert path's index of policies, and the watch's index of promoted routes, current (no API call
    when an alert or a sample arrives)."""
    handle_alert.INDEX.observe(event.get("type"), body)
    handle_watch.INDEX.observe(event.get("type"), body)


def _watched(body: kopf.Body, **_: Any) -> bool:
    return handle_watch.watched_of(body) is not None


@kopf.timer(GROUP, VERSION, "routepolicies", interval=WATCH_CHECK_INTERVAL, sharp=False, when=_watched)
def routepolicy_watch_check(body: kopf.Body, **_: Any) -> None:
    """A watched route's Watched condition is refreshed without samples too: starvation shows this way."""
    handle_watch.check(body)


@kopf.on.delete(GROUP, VERSION, "routepolicies")
def routepolicy_deleted(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    """Deleting a policy restores the last known good route (a Deletion rollback through the route writer); a
    gateway that is down delays the deletion."""
    try:
        handle_route.restore_on_delete(body, logger=logger)
    except interface.GatewayError as exc:
        raise kopf.TemporaryError(exc.message, delay=5) from exc
    handle_route.route_writer().forget(uid)


@kopf.on.resume(GROUP, VERSION, "qualificationruns")
@kopf.on.create(GROUP, VERSION, "qualificationruns")
def qualificationrun_changed(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("QualificationRun", uid, handle_qualificationrun.reconcile, body, logger)


@kopf.on.event(GROUP, VERSION, "qualificationruns")
async def qualificationrun_event(event: kopf.RawEvent, body: kopf.Body, logger: Logger, **_: Any) -> None:
    """A run that changed phase (a verdict, a start) has its policy reconciled at once, so an idle policy needs
    no timer to learn a verdict. Best effort: a policy still qualifying also ticks."""
    owner = handle_qualificationrun.phase_change(event.get("type"), body)
    if owner is None:
        return
    namespace, name, uid = owner
    try:
        await asyncio.to_thread(
            _guarded,
            "RoutePolicy",
            uid,
            handle_routepolicy.reconcile,
            {"metadata": {"namespace": namespace, "name": name}},
            logger,
        )
    except Exception as exc:  # the policy's own handlers and timer retry; an event handler is not retried
        logger.warning("reconciling RoutePolicy %s/%s after its run changed phase failed: %s", namespace, name, exc)


def _undecided(status: kopf.Status, **_: Any) -> bool:
    """Decided runs are evidence: nothing ticks them (their Job was stopped when the verdict was written; a
    restart's resume handler re-checks that once)."""
    return status.get("phase") not in handle_qualificationrun.FINAL_PHASES


@kopf.timer(GROUP, VERSION, "qualificationruns", interval=RECONCILE_INTERVAL, sharp=False, when=_undecided)
def qualificationrun_tick(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("QualificationRun", uid, handle_qualificationrun.reconcile, body, logger)

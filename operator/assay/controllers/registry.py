"""Every kopf registration in one place. Handlers are thin: they hand the body to a handle_* module."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from assay import GROUP, VERSION, kube, metrics
from assay.controllers import Logger, handle_alert, handle_qualificationrun, handle_route, handle_routepolicy, status
from assay.gateways import interface

KOPF_PREFIX = f"kopf.{GROUP}"
# How often every object is reconciled even when nothing changed (level-based: it notices missing Secrets
# that appeared, Jobs that progressed, routes edited by hand).
RECONCILE_INTERVAL = float(os.environ.get("ASSAY_RECONCILE_INTERVAL", "10"))


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


def _fresh(kind: str, uid: str, body: kopf.Body) -> dict[str, Any] | None:
    """The object as the API has it now, or None if it is gone (or replaced by a namesake). kopf's body can
    lag behind our own status writes, and acting on a stale status (a missing lastKnownGood, say) must never
    happen."""
    try:
        fresh = kube.get_object(kind, body["metadata"]["namespace"], body["metadata"]["name"])
    except Exception as exc:
        if kube.is_not_found(exc):
            return None
        raise
    return fresh if fresh["metadata"].get("uid") == uid else None


def _guarded(kind: str, uid: str, fn: Any, body: kopf.Body, logger: Logger) -> None:
    """Reconcile one object under its lock, from a fresh read."""
    with status.lock_for(uid):
        fresh = _fresh(kind, uid, body)
        if fresh is None:
            return
        try:
            fn(fresh, logger=logger)
        except Exception:
            metrics.RECONCILE_ERRORS.labels(kind=kind).inc()
            raise


@kopf.on.resume(GROUP, VERSION, "routepolicies")
@kopf.on.create(GROUP, VERSION, "routepolicies")
@kopf.on.update(GROUP, VERSION, "routepolicies")
def routepolicy_changed(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("RoutePolicy", uid, handle_routepolicy.reconcile, body, logger)


@kopf.timer(GROUP, VERSION, "routepolicies", interval=RECONCILE_INTERVAL, sharp=False)
def routepolicy_tick(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("RoutePolicy", uid, handle_routepolicy.reconcile, body, logger)


@kopf.on.event(GROUP, VERSION, "routepolicies")
async def routepolicy_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Keep the alert path's index of policies current (no API call when an alert arrives)."""
    handle_alert.INDEX.observe(event.get("type"), body)


@kopf.on.delete(GROUP, VERSION, "routepolicies")
def routepolicy_deleted(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    """Deleting a policy restores the last known good route; a gateway that is down delays the deletion."""
    with status.lock_for(uid):
        fresh = _fresh("RoutePolicy", uid, body)
        if fresh is None:
            return
        try:
            handle_route.restore_on_delete(fresh, logger=logger)
        except interface.GatewayError as exc:
            if exc.retryable:
                raise kopf.TemporaryError(f"restoring the route before deletion: {exc.message}", delay=10) from exc
            logger.error("could not restore the route of a deleted policy: %s", exc.message)


@kopf.on.resume(GROUP, VERSION, "qualificationruns")
@kopf.on.create(GROUP, VERSION, "qualificationruns")
def qualificationrun_changed(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("QualificationRun", uid, handle_qualificationrun.reconcile, body, logger)


def _undecided(status: kopf.Status, **_: Any) -> bool:
    """Decided runs are evidence: nothing ticks them (their Job was stopped when the verdict was written; a
    restart's resume handler re-checks that once)."""
    return status.get("phase") not in handle_qualificationrun.FINAL_PHASES


@kopf.timer(GROUP, VERSION, "qualificationruns", interval=RECONCILE_INTERVAL, sharp=False, when=_undecided)
def qualificationrun_tick(body: kopf.Body, uid: str, logger: Logger, **_: Any) -> None:
    _guarded("QualificationRun", uid, handle_qualificationrun.reconcile, body, logger)

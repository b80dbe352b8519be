"""Kubernetes Events with distinct reasons. Messages never carry prompt or answer text, nor secrets.

Posted with assay's own client (not kopf.event), so the same call works from kopf handlers, the alert
webhook and any thread. Events are best effort: a failure to post is logged and never fails the caller.
"""

from __future__ import annotations

import datetime
import logging
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from assay import kube

logger = logging.getLogger("assay.events")
REPORTING_COMPONENT = "assay.dev/operator"


def _post(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    meta = body.get("metadata") or {}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "metadata": {"generateName": f"{meta.get('name', 'assay')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": {"component": "assay"},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": socket.gethostname()[:128],
    }
    try:
        kube.core().create_namespaced_event(
            str(meta.get("namespace")),
            event,  # type: ignore[arg-type]
            _request_timeout=kube.REQUEST_TIMEOUT,
        )
    except Exception as exc:  # best effort: never fail reconciliation for an Event
        logger.warning("could not post Event %s for %s/%s: %s", reason, meta.get("namespace"), meta.get("name"), exc)


def normal(body: Mapping[str, Any], reason: str, message: str) -> None:
    _post(body, "Normal", reason, message)


def warning(body: Mapping[str, Any], reason: str, message: str) -> None:
    _post(body, "Warning", reason, message)


def post_notices(body: Mapping[str, Any], notices: Iterable[Any]) -> None:
    """Post the Events a pure module decided (objects with type "Normal" or "Warning", reason and message)."""
    for notice in notices:
        _post(body, "Warning" if notice.type == "Warning" else "Normal", notice.reason, notice.message)

"""Drift alerts to rollbacks: the webhook server's callbacks, bridging to the one rollback path."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from assay import GROUP, VERSION, kube
from assay.alerts import Match
from assay.controllers import handle_route, status

logger = logging.getLogger("assay.alerts")

# Listing every RoutePolicy from the API on each alert costs ~0.4-0.7 s at 1,000 policies (docs/benchmarks.md),
# so the alert path reads an index the operator's watch keeps instead, and lists from the API only while the
# index may still be filling after a start.
WARM_UP_SECONDS = 30.0


class PolicyIndex:
    """The RoutePolicies the operator watches, kept from kopf's watch events (metadata and spec only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        with self._lock:
            if event_type == "DELETED":
                self._items.pop(uid, None)
            else:
                self._items[uid] = {"metadata": dict(meta), "spec": dict(body.get("spec") or {})}

    def warm(self) -> bool:
        return time.monotonic() - self._started >= WARM_UP_SECONDS

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())


INDEX = PolicyIndex()


def _list_policies(namespaces: Sequence[str]) -> list[dict[str, Any]]:
    api = kube.custom()
    if not namespaces:
        result: Any = api.list_cluster_custom_object(GROUP, VERSION, "routepolicies")
        return list(result.get("items", []))
    items: list[dict[str, Any]] = []
    for namespace in namespaces:
        result = api.list_namespaced_custom_object(GROUP, VERSION, namespace, "routepolicies")
        items.extend(result.get("items", []))
    return items


def _roll_back(match: Match, received_wall: float) -> None:
    with status.lock_for(match.uid):
        body = kube.get_object("RoutePolicy", match.namespace, match.name)
        handled = list((body.get("status") or {}).get("handledAlerts") or [])
        key = f"{match.fingerprint}@{match.starts_at.isoformat()}"
        if key in handled:
            return  # acted on before a restart: Alertmanager re-sends firing alerts
        handle_route.roll_back_now(body, reason=match.alert_name, received_at=received_wall, logger=logger)
        kube.patch_status("RoutePolicy", match.namespace, match.name, {"handledAlerts": [*handled, key][-64:]})


def callbacks(namespaces: Sequence[str]) -> tuple[Any, Any]:
    """(list_policies, on_matches) for assay.alerts.make_app."""

    async def list_policies() -> list[dict[str, Any]]:
        if INDEX.warm():
            return INDEX.items()
        return await asyncio.to_thread(_list_policies, namespaces)

    async def on_matches(matches: list[Match], received_at: float) -> None:
        received_wall = time.time() - (time.monotonic() - received_at)
        await asyncio.gather(*(asyncio.to_thread(_roll_back, m, received_wall) for m in matches))

    return list_policies, on_matches

"""Builders for Alertmanager payloads and RoutePolicy objects, shaped as the real senders shape them."""

from __future__ import annotations

from typing import Any

STARTS_AT = "2025-11-30T10:00:00.123456789Z"


def alert(
    labels: dict[str, str],
    *,
    status: str = "firing",
    starts_at: str = STARTS_AT,
    fingerprint: str | None = "f00dfeedcafe0001",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager's webhook sends it (endsAt zero while firing)."""
    body: dict[str, Any] = {
        "status": status,
        "labels": labels,
        "annotations": annotations if annotations is not None else {"summary": "judge win rate dropped"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2025-11-30T11:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    }
    if fingerprint is not None:
        body["fingerprint"] = fingerprint
    return body


def notification(*alerts: dict[str, Any], version: str = "4") -> dict[str, Any]:
    """A webhook v4 body around these alerts, with the group fields Alertmanager fills in."""
    statuses = {item.get("status") for item in alerts}
    return {
        "version": version,
        "groupKey": '{}:{alertname="JudgeDrift"}',
        "truncatedAlerts": 0,
        "status": "firing" if "firing" in statuses else "resolved",
        "receiver": "assay",
        "groupLabels": {"alertname": "JudgeDrift"},
        "commonLabels": {"alertname": "JudgeDrift"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def policy(
    name: str,
    *,
    namespace: str = "team-a",
    match_labels: dict[str, str] | None = None,
    match_expressions: list[dict[str, Any]] | None = None,
    with_selector: bool = True,
) -> dict[str, Any]:
    """A RoutePolicy as read from the API (camelCase), with only the fields matching reads besides metadata."""
    rollback: dict[str, Any] = {"requalifyAfterRollback": False}
    if with_selector:
        rollback["alertSelector"] = {
            "matchLabels": match_labels or {},
            "matchExpressions": match_expressions or [],
        }
    return {
        "apiVersion": "assay.dev/v1alpha1",
        "kind": "RoutePolicy",
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}"},
        "spec": {"promptType": name, "rollback": rollback},
    }

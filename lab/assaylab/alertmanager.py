"""Alertmanager webhook (v4) bodies, shaped as Alertmanager sends them: for tests, the demo and benchmarks
that stand in for a real Alertmanager (tests/integration/test_drift_loop.py runs the real one)."""

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
    names = sorted({item.get("labels", {}).get("alertname", "") for item in alerts})
    group = {"alertname": names[0]} if len(names) == 1 else {}
    return {
        "version": version,
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
        "status": "firing" if "firing" in statuses else "resolved",
        "receiver": "assay",
        "groupLabels": group,
        "commonLabels": group,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }

"""Builders for Alertmanager payloads and RoutePolicy objects, shaped as the real senders shape them."""

from __future__ import annotations

from typing import Any

from assaylab.alertmanager import STARTS_AT, alert, notification

__all__ = ["STARTS_AT", "alert", "notification", "policy"]


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

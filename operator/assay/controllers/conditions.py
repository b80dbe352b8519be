"""metav1.Condition bookkeeping, pure: set a condition only when it changes, so status patches do not loop."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def now() -> str:
    """The current time in the RFC 3339 form Kubernetes uses (seconds precision, Z)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    type: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """Conditions with `type` set. lastTransitionTime moves only when the status flips; an unchanged
    condition comes back identical, so callers can compare the lists to decide whether to write."""
    result: list[dict[str, Any]] = []
    found = False
    for existing in conditions or []:
        if existing.get("type") != type:
            result.append(dict(existing))
            continue
        found = True
        transition = existing.get("lastTransitionTime") if existing.get("status") == status else None
        result.append(_condition(type, status, reason, message, observed_generation, transition or at or now()))
    if not found:
        result.append(_condition(type, status, reason, message, observed_generation, at or now()))
    return result


def _condition(type: str, status: str, reason: str, message: str, generation: int | None, at: str) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": at,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def get(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type), None)


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> bool:
    condition = get(conditions, type)
    return bool(condition and condition.get("status") == TRUE)

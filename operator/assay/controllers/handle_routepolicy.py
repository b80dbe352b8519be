"""RoutePolicy reconciliation: one idempotent function that compares desired and observed state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from assay import kube
from assay.api import routepolicy
from assay.controllers import Logger, conditions, events, references, status

KIND = "RoutePolicy"


def _validation_message(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = "spec." + ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}"


def reconcile(body: Mapping[str, Any], *, logger: Logger) -> None:
    """Bring one RoutePolicy's status in line with its spec and the world. Safe to call at any time."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    current: dict[str, Any] = dict(body.get("status") or {})
    desired = dict(current)
    desired["observedGeneration"] = generation

    spec: routepolicy.RoutePolicySpec | None = None
    try:
        spec = routepolicy.RoutePolicySpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as exc:
        ready = (conditions.FALSE, "InvalidSpec", _validation_message(exc))
    else:
        problem = references.check(
            references.of_policy(spec), keys_of=lambda kind, ref: kube.data_keys(kind, namespace, ref)
        )
        if problem:
            ready = (conditions.FALSE, problem.reason, problem.message)
        else:
            ready = (conditions.TRUE, "ReferencesResolved", "All referenced Secrets and ConfigMaps exist.")

    was_ready = conditions.is_true(current.get("conditions"), "Ready")
    desired["conditions"] = conditions.set_condition(
        current.get("conditions"),
        type="Ready",
        status=ready[0],
        reason=ready[1],
        message=ready[2],
        observed_generation=generation,
    )
    if ready[0] != conditions.TRUE:
        desired["phase"] = current.get("phase") if current.get("phase") not in (None, "Pending") else "Pending"
    elif current.get("phase") in (None, "Pending"):
        desired["phase"] = "Qualifying" if spec is not None else "Pending"

    if status.write(KIND, namespace, name, current, desired):
        logger.info("status: phase=%s ready=%s reason=%s", desired.get("phase"), ready[0], ready[1])
        now_ready = ready[0] == conditions.TRUE
        if now_ready != was_ready or current.get("observedGeneration") != generation:
            if now_ready:
                events.normal(body, "Ready", ready[2])
            else:
                events.warning(body, ready[1], ready[2])

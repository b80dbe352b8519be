"""QualificationRun reconciliation: references, the evaluation Job, evidence aggregation and the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from assay import kube
from assay.api import qualificationrun
from assay.controllers import Logger, conditions, events, references, status

KIND = "QualificationRun"
FINAL_PHASES = frozenset({"Passed", "Failed", "Inconclusive", "Error"})


def reconcile(body: Mapping[str, Any], *, logger: Logger) -> None:
    """Bring one QualificationRun forward. Safe to call at any time; a decided run is left alone."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    current: dict[str, Any] = dict(body.get("status") or {})
    if current.get("phase") in FINAL_PHASES:
        return
    desired = dict(current)
    desired["observedGeneration"] = generation
    try:
        spec = qualificationrun.QualificationRunSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        ready = (conditions.FALSE, "InvalidSpec", "spec." + ".".join(map(str, first["loc"])) + ": " + first["msg"])
    else:
        problem = references.check(
            references.of_run(spec), keys_of=lambda kind, ref: kube.data_keys(kind, namespace, ref)
        )
        ready = (
            (conditions.FALSE, problem.reason, problem.message)
            if problem
            else (conditions.TRUE, "ReferencesResolved", "All referenced Secrets and ConfigMaps exist.")
        )
    was_ready = conditions.is_true(current.get("conditions"), "Ready")
    desired["conditions"] = conditions.set_condition(
        current.get("conditions"),
        type="Ready",
        status=ready[0],
        reason=ready[1],
        message=ready[2],
        observed_generation=generation,
    )
    desired.setdefault("phase", "Pending")
    if ready[0] != conditions.TRUE:
        desired["reason"], desired["message"] = ready[1], ready[2]
    if status.write(KIND, namespace, name, current, desired):
        logger.info("status: phase=%s ready=%s reason=%s", desired.get("phase"), ready[0], ready[1])
        if (ready[0] == conditions.TRUE) != was_ready:
            (events.normal if ready[0] == conditions.TRUE else events.warning)(body, ready[1], ready[2])

"""RoutePolicy reconciliation: one idempotent function that compares desired and observed state.

Stages, each safe to repeat: validate and resolve references (Ready) -> one QualificationRun per candidate
-> reflect their verdicts -> route intents (assay.promotion.machine), which the route writer of the gateway
location carries out (assay.controllers.handle_route).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from kubernetes import client

from assay import GROUP, VERSION, clock, kube, metrics
from assay.api import routepolicy
from assay.controllers import Logger, conditions, events, handle_route, manifests, policy_runs, references, status
from assay.gateways import factory, weighted_route
from assay.promotion import machine
from assay.qualification import cost

KIND = "RoutePolicy"


def _list_runs(namespace: str, policy_name: str) -> dict[str, dict[str, Any]]:
    result: dict[str, Any] = kube.custom().list_namespaced_custom_object(  # type: ignore[assignment]
        GROUP,
        VERSION,
        namespace,
        "qualificationruns",
        label_selector=f"{manifests.LABEL_POLICY}={policy_name}",
        _request_timeout=kube.REQUEST_TIMEOUT,
    )
    return {item["metadata"]["name"]: item for item in result.get("items", [])}


def _ensure_runs(wanted: list[dict[str, Any]], existing: Mapping[str, Any], namespace: str) -> list[str]:
    created = []
    for run in wanted:
        name = run["metadata"]["name"]
        if name in existing:
            continue
        try:
            kube.custom().create_namespaced_custom_object(
                GROUP, VERSION, namespace, "qualificationruns", run, _request_timeout=kube.REQUEST_TIMEOUT
            )
            created.append(name)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    return created


def _qualification_phase(candidates: list[dict[str, Any]]) -> tuple[str, str, str, str]:
    """(phase, Qualified status, reason, message) from the candidates' runs."""
    best = policy_runs.best_candidate(candidates)
    if best is not None:
        return (
            "Qualified",
            conditions.TRUE,
            "CandidatePassed",
            f"Candidate {best['name']} passed (lower bound {best.get('lowerBound', 0):.3f}).",
        )
    if policy_runs.all_decided(candidates):
        summary = ", ".join(f"{c['name']}: {c['phase']} ({c.get('reason', '')})" for c in candidates)
        return "NotQualified", conditions.FALSE, "NoCandidatePassed", f"No candidate passed: {summary}."
    running = sum(1 for c in candidates if c["phase"] not in {"Passed", "Failed", "Inconclusive", "Error"})
    return "Qualifying", conditions.UNKNOWN, "Qualifying", f"{running} of {len(candidates)} run(s) still deciding."


def reconcile(body: Mapping[str, Any], *, logger: Logger) -> None:
    """Bring one RoutePolicy's status in line with its spec and the world. Safe to call at any time; raises
    status.Conflict when the policy changed since `body` was read (the caller re-reads and calls again).

    Route changes are only decided here (intents in status); the route writer of the gateway location carries
    them out. Rollbacks are decided whatever Ready, spec.paused and the qualification stage say."""
    meta = body["metadata"]
    namespace, name, uid, generation = meta["namespace"], meta["name"], meta["uid"], meta.get("generation")
    current: dict[str, Any] = dict(body.get("status") or {})
    desired = dict(current)
    desired["observedGeneration"] = generation

    spec: routepolicy.RoutePolicySpec | None = None
    try:
        spec = routepolicy.RoutePolicySpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as exc:
        invalid = references.invalid_spec(exc)
        ready = (conditions.FALSE, invalid.reason, invalid.message)
    else:
        problem = (
            references.check(references.of_policy(spec), keys_of=lambda kind, ref: kube.data_keys(kind, namespace, ref))
            or references.check_servable(spec)
            or references.check_backends(spec, backends_in_route=lambda: _route_backends(spec, namespace))
        )
        found = problem or references.RESOLVED
        ready = (conditions.FALSE if problem else conditions.TRUE, found.reason, found.message)

    was_ready = conditions.is_true(current.get("conditions"), "Ready")
    desired["conditions"] = conditions.set_condition(
        current.get("conditions"),
        type="Ready",
        status=ready[0],
        reason=ready[1],
        message=ready[2],
        observed_generation=generation,
    )
    is_ready = ready[0] == conditions.TRUE and spec is not None
    if not is_ready:
        desired["phase"] = current.get("phase") if current.get("phase") not in (None, "Pending") else "Pending"
    runs: dict[str, dict[str, Any]] = {}
    if is_ready and spec is not None and not spec.paused:
        runs = _qualify(spec, desired, namespace=namespace, name=name, uid=uid, generation=generation, body=body)

    planned = machine.plan(
        machine.Status.model_validate(desired),
        spec=spec,
        annotations=meta.get("annotations") or {},
        ready=is_ready,
        now=clock.now(),
    )
    desired = machine.wire(planned.status)
    if is_ready and spec is not None and not spec.paused:
        _savings(desired, runs, namespace=namespace, name=name)

    written = status.write(KIND, namespace, name, current, desired, resource_version=meta.get("resourceVersion"))
    events.post_notices(body, planned.notices)
    if written:
        logger.info("status: phase=%s ready=%s reason=%s", desired.get("phase"), ready[0], ready[1])
        if is_ready != was_ready:
            if is_ready:
                events.normal(body, "Ready", ready[2])
            else:
                events.warning(body, ready[1], ready[2])
    state = planned.status
    if state.pending is not None or state.last_known_good is None or not handle_route.route_writer().knows(uid):
        handle_route.submit({**body, "status": desired})


def in_flight(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether the policy needs periodic reconciles (assay.promotion.machine.in_flight); a spec that does not
    parse keeps them."""
    try:
        parsed = routepolicy.RoutePolicySpec.model_validate(dict(spec or {}))
        state = machine.Status.model_validate(dict(status or {}))
    except pydantic.ValidationError:
        return True
    return machine.in_flight(state, parsed)


def _route_backends(spec: routepolicy.RoutePolicySpec, namespace: str) -> list[str] | None:
    gateway = factory.for_policy(spec, namespace=namespace, api_client=kube.api_client())
    return gateway.backend_names() if isinstance(gateway, weighted_route.WeightedRouteGateway) else None


def _qualify(
    spec: routepolicy.RoutePolicySpec,
    desired: dict[str, Any],
    *,
    namespace: str,
    name: str,
    uid: str,
    generation: int | None,
    body: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Ensure one run per candidate and reflect their verdicts in the policy's status; returns the runs."""
    epoch = int(desired.get("qualificationEpoch") or 0)
    wanted = policy_runs.desired_runs(spec, policy_name=name, policy_uid=uid, namespace=namespace, epoch=epoch)
    existing = _list_runs(namespace, name)
    for created in _ensure_runs(wanted, existing, namespace):
        events.normal(body, "QualificationCreated", f"QualificationRun {created} created.")
    candidates = policy_runs.candidate_statuses(spec, existing, wanted)
    desired["candidates"] = candidates
    best = policy_runs.best_candidate(candidates)
    bounds = [c["lowerBound"] for c in candidates if c.get("lowerBound") is not None]
    if best is not None:
        desired["bestCandidate"] = best["name"]
        desired["lowerBound"] = best.get("lowerBound")
    elif bounds:
        desired["lowerBound"] = max(bounds)
    phase, qualified, reason, message = _qualification_phase(candidates)
    desired["conditions"] = conditions.set_condition(
        desired.get("conditions"),
        type="Qualified",
        status=qualified,
        reason=reason,
        message=message,
        observed_generation=generation,
    )
    if desired.get("phase") in (None, "Pending", "Qualifying", "NotQualified", "Qualified"):
        desired["phase"] = phase
    return {c["name"]: existing.get(c["run"], {}) for c in candidates}


def _savings(desired: dict[str, Any], runs: Mapping[str, Mapping[str, Any]], *, namespace: str, name: str) -> None:
    """Projected savings of the active route, from the promoted candidate's measured cost per request."""
    promoted = desired.get("promotedCandidate")
    stats = ((runs.get(promoted) or {}).get("status") or {}).get("statistics") or {} if promoted else {}
    per_request = stats.get("costPerRequest") or {}
    percent, per_1k = cost.savings(per_request.get("baseline"), per_request.get("candidate"))
    if percent is None or per_1k is None:
        desired.pop("savings", None)
        metrics.PROJECTED_SAVINGS.labels(namespace=namespace, policy=name).set(0)
        return
    desired["savings"] = {"percent": round(percent, 2), "per1kRequests": round(per_1k, 4), "display": f"{percent:.0f}%"}
    metrics.PROJECTED_SAVINGS.labels(namespace=namespace, policy=name).set(percent / 100)

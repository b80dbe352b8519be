"""From a RoutePolicy to its QualificationRuns and back, as plain data (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assay import API_VERSION
from assay.api import routepolicy
from assay.controllers import manifests


def run_spec(spec: routepolicy.RoutePolicySpec, candidate_index: int, *, policy_name: str) -> dict[str, Any]:
    """The wire-form QualificationRunSpec for one candidate of a policy."""
    q = spec.qualification
    candidate = spec.candidates[candidate_index]
    run = {
        "policyRef": {"name": policy_name},
        "endpoint": q.endpoint.to_wire(),
        "baseline": spec.baseline.to_wire(),
        "candidate": candidate.to_wire(),
        "dataset": q.dataset.to_wire(),
        "judge": q.judge.to_wire(),
        "test": q.test.to_wire(),
        "format": q.format.to_wire(),
        "execution": q.execution.to_wire(),
        "candidatesInPool": len(spec.candidates),
        "pricing": [p.to_wire() for p in spec.pricing],
    }
    return run


def run_name(policy_name: str, candidate_name: str, spec_hash: str) -> str:
    """Names change with the experiment: an edited spec, or a requalification, gets new runs. At most 63
    characters, because the name is also the value of the assay.dev/run label."""
    room = 63 - len(candidate_name) - len(spec_hash[:8]) - 2
    return f"{policy_name[:room].rstrip('-.')}-{candidate_name}-{spec_hash[:8]}"


def desired_runs(
    spec: routepolicy.RoutePolicySpec, *, policy_name: str, policy_uid: str, namespace: str, epoch: int
) -> list[dict[str, Any]]:
    """One QualificationRun per candidate, owned by the policy."""
    runs = []
    for index, candidate in enumerate(spec.candidates):
        wire = run_spec(spec, index, policy_name=policy_name)
        digest = manifests.spec_hash({"spec": wire, "epoch": epoch})
        runs.append(
            {
                "apiVersion": API_VERSION,
                "kind": "QualificationRun",
                "metadata": {
                    "name": run_name(policy_name, candidate.name, digest),
                    "namespace": namespace,
                    "labels": {
                        manifests.LABEL_POLICY: policy_name,
                        manifests.LABEL_CANDIDATE: candidate.name,
                    }
                    | manifests.MANAGED_BY,
                    "annotations": {"assay.dev/qualification-epoch": str(epoch)},
                    "ownerReferences": [
                        manifests.owner_reference(kind="RoutePolicy", name=policy_name, uid=policy_uid)
                    ],
                },
                "spec": wire,
            }
        )
    return runs


def candidate_statuses(
    spec: routepolicy.RoutePolicySpec, runs_by_name: Mapping[str, Mapping[str, Any]], wanted: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """status.candidates: the latest run of each candidate, summarized."""
    out = []
    for candidate, desired in zip(spec.candidates, wanted, strict=True):
        name = desired["metadata"]["name"]
        run = runs_by_name.get(name) or {}
        st = run.get("status") or {}
        stats = st.get("statistics") or {}
        cost = stats.get("costPerRequest") or {}
        entry: dict[str, Any] = {"name": candidate.name, "run": name, "phase": st.get("phase") or "Pending"}
        if st.get("reason"):
            entry["reason"] = st["reason"]
        if st.get("completedAt"):
            entry["decidedAt"] = st["completedAt"]
        for key, source in (("estimate", "estimate"), ("lowerBound", "lowerBound")):
            if stats.get(source) is not None:
                entry[key] = stats[source]
        if cost.get("candidate") is not None:
            entry["costPerRequest"] = cost["candidate"]
            if cost.get("baseline"):
                entry["savingsPercent"] = round(100 * (cost["baseline"] - cost["candidate"]) / cost["baseline"], 2)
        out.append(entry)
    return out


def best_candidate(statuses: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The passed candidate that saves the most (ties: the higher lower bound); None if none passed."""
    passed = [s for s in statuses if s.get("phase") == "Passed"]
    if not passed:
        return None
    return max(passed, key=lambda s: (s.get("savingsPercent") or 0.0, s.get("lowerBound") or 0.0))


def all_decided(statuses: Sequence[Mapping[str, Any]]) -> bool:
    return all(s.get("phase") in {"Passed", "Failed", "Inconclusive", "Error"} for s in statuses)

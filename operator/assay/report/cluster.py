"""The report's and the kubectl plugin's Kubernetes I/O, through assay.kube and the current kubeconfig:
read a QualificationRun with its evidence ConfigMaps, list policies and runs, annotate a RoutePolicy.

Every failure becomes a ClusterError whose message names the object and what to do, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, cast

import pydantic
from kubernetes import client, config

from assay import GROUP, VERSION, kube
from assay.api import qualificationrun
from assay.evaluator import kube as evidence_store
from assay.evaluator import sinks
from assay.evaluator.errors import EvaluatorError
from assay.qualification import cost, evidence
from assay.report import content

# A run in these phases has all the evidence it will get: an undecided test is concluded, as the operator did.
DECIDED_PHASES = frozenset({"Passed", "Failed", "Inconclusive"})


class ClusterError(RuntimeError):
    """The cluster could not be reached or the object could not be read or written; the message says why."""


@contextlib.contextmanager
def _api(what: str) -> Iterator[None]:
    """Turn the client's exceptions into a ClusterError about `what`."""
    try:
        yield
    except client.ApiException as exc:
        if exc.status == 404:
            raise ClusterError(f"{what}: not found (check the name and --namespace)") from None
        if exc.status == 403:
            raise ClusterError(f"{what}: forbidden by RBAC for the current kubeconfig user") from None
        raise ClusterError(f"{what}: HTTP {exc.status} {exc.reason}") from None
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(f"{what}: no Kubernetes access ({exc}); set KUBECONFIG or log in to a cluster") from None


def current_namespace() -> str:
    """The namespace of the kubeconfig's current context, else "default" (as kubectl does)."""
    with contextlib.suppress(config.ConfigException, OSError, KeyError, TypeError):
        _, active = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
        namespace = (active or {}).get("context", {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"


def get(kind: str, namespace: str, name: str) -> dict[str, Any]:
    """One of assay's objects, as the API server returns it."""
    with _api(f"{kind} {namespace}/{name}"):
        return kube.get_object(kind, namespace, name)


def list_objects(kind: str, namespace: str | None) -> list[dict[str, Any]]:
    """Every object of one of assay's kinds in `namespace` (all namespaces when None), by namespace and name."""
    where = "all namespaces" if namespace is None else f"namespace {namespace}"
    with _api(f"listing {kind} in {where}"):
        api, plural = kube.custom(), kube.PLURALS[kind]
        if namespace is None:
            found = api.list_cluster_custom_object(GROUP, VERSION, plural, _request_timeout=kube.REQUEST_TIMEOUT)
        else:
            found = api.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, _request_timeout=kube.REQUEST_TIMEOUT
            )
    items = cast(list[dict[str, Any]], cast(dict[str, Any], found).get("items") or [])
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def annotate(kind: str, namespace: str, name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
    """Set annotations on one of assay's objects (a merge patch: other annotations are kept)."""
    with _api(f"annotating {kind} {namespace}/{name}"):
        return kube.patch_object(kind, namespace, name, {"metadata": {"annotations": dict(annotations)}})


def run_report(namespace: str, name: str) -> content.Report:
    """The report of one QualificationRun: its spec's settings, models, prompts and prices, and the longest
    complete prefix of its evidence ConfigMaps, replayed as the operator replays them."""
    from assay.controllers import handle_qualificationrun  # the operator's own spec -> settings mapping

    where = f"QualificationRun {namespace}/{name}"
    run = get("QualificationRun", namespace, name)
    try:
        spec = qualificationrun.QualificationRunSpec.model_validate(run.get("spec") or {})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = "spec." + ".".join(map(str, first["loc"]))
        raise ClusterError(f"{where}: {field}: {first['msg']}") from None
    with _api(f"reading the evidence ConfigMaps of {where}"):
        try:
            by_shard, _ = evidence_store.read_evidence_configmaps(kube.core(), namespace, name)
        except EvaluatorError as exc:
            raise ClusterError(f"{where}: {exc}") from None
    prefix = sinks.longest_complete_prefix(by_shard, spec.execution.parallelism)
    try:
        records = [evidence.from_dict(r, line_no=r["seq"], source=f"{where} evidence seq") for r in prefix]
    except evidence.EvidenceError as exc:
        raise ClusterError(str(exc)) from None
    status = run.get("status") or {}
    recorded = content.RecordedStatus(
        phase=status.get("phase"), reason=status.get("reason"), message=status.get("message")
    )
    return content.build(
        records,
        handle_qualificationrun.test_settings(spec),
        name=name,
        source=f"{where}: {spec.candidate.name} ({spec.candidate.model}) against {spec.baseline.model}",
        ended=status.get("phase") in DECIDED_PHASES,
        baseline_model=spec.baseline.model,
        candidate_model=spec.candidate.model,
        prices=cost.price_table(spec.pricing),
        recorded=recorded,
        prompts=content.Prompts(
            candidate=spec.candidate.system_prompt,
            baseline=spec.baseline.system_prompt,
            candidate_model=spec.candidate.model,
        ),
    )


def watch_report(namespace: str, name: str) -> content.WatchReport:
    """The live quality watch report of one RoutePolicy: its status.watch and its kept watch evidence."""
    from assay.controllers import watch_evidence as store  # the operator's own ConfigMap layout

    where = f"RoutePolicy {namespace}/{name}"
    policy = get("RoutePolicy", namespace, name)
    with _api(f"reading the watch evidence ConfigMaps of {where}"):
        chunks = store.read(kube.core(), namespace, str(policy["metadata"].get("uid", "")))
    try:
        report = content.build_watch(policy, chunks)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ClusterError(f"{where}: status.watch.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if report is None:
        raise ClusterError(f"{where}: no status.watch (spec.watch unset, or nothing promoted under it yet)")
    return report

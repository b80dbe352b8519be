"""A user who may only create QualificationRuns cannot change any gateway object through one: an image of their
choosing is never run (Ready=False ImageNotAllowed, no Job), and the evaluator identity the operator makes for an
allowed run may write its own evidence but not the gateway's ConfigMap, its Deployment or its routes. Against the
real kube-apiserver, the in-process operator and `kubectl auth can-i`."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest
import yaml
from kubernetes import client

from assay.controllers import manifests
from conftest import wait_for

pytestmark = pytest.mark.integration

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "qualificationrun.yaml"
GROUP, VERSION, PLURAL = "assay.dev", "v1alpha1", "qualificationruns"
USER = "mallory"


def _kubectl(kube: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [str(kube.bin_dir / "kubectl"), "--kubeconfig", str(kube.kubeconfig), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False, timeout=60)


def _can_i(kube: Any, user: str, verb: str, resource: str, namespace: str) -> bool:
    answer = _kubectl(kube, "auth", "can-i", verb, resource, f"--as={user}", "--namespace", namespace).stdout.strip()
    assert answer in {"yes", "no"}
    return answer == "yes"


def _only_create_qualificationruns(kube: Any, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    rule = {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "runs-only"}, "rules": [rule]})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "runs-only"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runs-only"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        },
    )


def _run(name: str, **execution: Any) -> dict[str, Any]:
    run = yaml.safe_load(EXAMPLE.read_text())
    run["metadata"]["name"] = name
    run["spec"]["execution"] = execution
    return run


def _status(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(kube.api_client()).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return dict(obj.get("status") or {})


def _ready(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)


def test_a_run_created_with_only_create_qualificationruns_cannot_change_a_gateway_object(kube, operator, namespace):
    _only_create_qualificationruns(kube, namespace)
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "support-summary-traffic"}, "data": {"prompts.jsonl": "{}"}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "litellm-config"}, "data": {"config.yaml": "x"}})
    for verb, resource in [("patch", "configmaps"), ("create", "jobs.batch"), ("patch", "deployments.apps")]:
        assert not _can_i(kube, USER, verb, resource, namespace)

    # Their own program, with the run's API keys: refused before any Job exists.
    evil = _run("evil", image="registry.evil.example/assay:1")
    created = _kubectl(kube, "create", f"--as={USER}", "--namespace", namespace, "-f", "-", stdin=yaml.safe_dump(evil))
    assert created.returncode == 0, created.stderr
    ready = wait_for(lambda: _ready(_status(kube, namespace, "evil")), what="a Ready condition on the evil run")
    assert (ready["status"], ready["reason"]) == ("False", "ImageNotAllowed")
    assert "spec.execution.image 'registry.evil.example/assay:1'" in ready["message"]
    jobs = client.BatchV1Api(kube.api_client()).list_namespaced_job(namespace).items
    assert [job.metadata.name for job in jobs] == []

    # The operator's own image: its evaluator may write its evidence, and nothing of the gateway.
    allowed = _run("allowed")
    created = _kubectl(
        kube, "create", f"--as={USER}", "--namespace", namespace, "-f", "-", stdin=yaml.safe_dump(allowed)
    )
    assert created.returncode == 0, created.stderr
    account = manifests.evaluator_account("allowed")
    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    wait_for(
        lambda: rbac.list_namespaced_role(namespace, field_selector=f"metadata.name={account}").items,
        what="the allowed run's evaluator Role",
    )
    evaluator = f"system:serviceaccount:{namespace}:{account}"
    assert _can_i(kube, evaluator, "create", "configmaps", namespace)
    assert _can_i(kube, evaluator, "patch", "configmaps/allowed-shard-0", namespace)
    for verb, resource in [
        ("patch", "configmaps/litellm-config"),
        ("update", "configmaps/litellm-config"),
        ("delete", "configmaps/litellm-config"),
        ("patch", "configmaps/evil-shard-0"),
        ("patch", "deployments.apps"),
        ("patch", "routepolicies.assay.dev"),
        ("get", "secrets"),
        ("create", "roles.rbac.authorization.k8s.io"),
    ]:
        assert not _can_i(kube, evaluator, verb, resource, namespace), (verb, resource)
    # The identity belongs to the run: deleted with it.
    role = rbac.read_namespaced_role(account, namespace)
    assert [(o.kind, o.name) for o in role.metadata.owner_references] == [("QualificationRun", "allowed")]

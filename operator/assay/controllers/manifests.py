"""Desired objects as plain data (pure): the evaluation Job and the evaluator's least-privilege identity."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from assay import API_VERSION, GROUP, __version__, egress
from assay.api import qualificationrun
from assay.evaluator import kube as evaluator_kube

DEFAULT_IMAGE = f"ghcr.io/assay-dev/assay:{__version__}"
LABEL_RUN = f"{GROUP}/run"
LABEL_POLICY = f"{GROUP}/policy"
LABEL_CANDIDATE = f"{GROUP}/candidate"
MANAGED_BY = {"app.kubernetes.io/managed-by": "assay"}


# The images evaluation Jobs may run, from the chart's values (evaluator.allowedImages): the Job runs with the
# run's API keys, so whoever may create a QualificationRun must not choose an arbitrary program.
ENV_EVALUATOR_IMAGE = "ASSAY_EVALUATOR_IMAGE"
ENV_ALLOWED_IMAGES = "ASSAY_EVALUATOR_ALLOWED_IMAGES"


def evaluator_image(spec: qualificationrun.QualificationRunSpec) -> str:
    return spec.execution.image or os.environ.get(ENV_EVALUATOR_IMAGE) or DEFAULT_IMAGE


def allowed_images() -> list[str]:
    """The operator's own evaluator image, and the chart's allow-list: exact references, or prefixes ending in
    '/', ':' or '@' (a registry path, any tag of a repository, any digest of it)."""
    own = os.environ.get(ENV_EVALUATOR_IMAGE) or DEFAULT_IMAGE
    extra = [entry.strip() for entry in os.environ.get(ENV_ALLOWED_IMAGES, "").split(",") if entry.strip()]
    return [own, *extra]


def image_allowed(image: str, allowed: list[str]) -> bool:
    return any(image == entry or (entry.endswith(("/", ":", "@")) and image.startswith(entry)) for entry in allowed)


def evaluator_account(run_name: str) -> str:
    """The run's own evaluator ServiceAccount (and Role, RoleBinding): `assay-eval-<run>`."""
    return f"assay-eval-{run_name}"


def spec_hash(spec: dict[str, Any]) -> str:
    """A stable hash of a run's spec: equal specs are the same experiment."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# A run whose Job vanished before the test decided gets a new Job this many times, then ends in Error.
MAX_JOB_RECREATIONS = 3
_RECREATED = re.compile(r"-eval-r([0-9]+)$")


def job_name(run_name: str, *, recreation: int = 0) -> str:
    """The run's evaluation Job: `<run>-eval`, and `<run>-eval-r<n>` for the n-th Job made after one was lost.
    Recreated Jobs never reuse a name (a Job still being deleted keeps its name for a while), and the name in
    status.jobName counts the recreations. At most 63 characters, as a Job's label value must be."""
    suffix = f"-eval-r{recreation}" if recreation else "-eval"
    return run_name[: 63 - len(suffix) - 1].rstrip("-.") + suffix


def job_recreation(name: str | None) -> int:
    """How many Jobs were lost before the one named `name` (0 for the first, or no Job yet)."""
    found = _RECREATED.search(name or "")
    return int(found.group(1)) if found else 0


def owner_reference(*, kind: str, name: str, uid: str, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def _secret_env(name: str, ref: Any) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def evaluation_job(
    *,
    run_name: str,
    run_uid: str,
    namespace: str,
    spec: qualificationrun.QualificationRunSpec,
    wire_spec: dict[str, Any],
    recreation: int = 0,
) -> dict[str, Any]:
    """The batch/v1 Job that evaluates one run: one pod a shard (Indexed when parallelism > 1). `recreation`
    names the Job made after that many were lost (`job_name`); the evaluator resumes from the evidence."""
    shards = spec.execution.parallelism
    env: list[dict[str, Any]] = [
        {"name": "ASSAY_RUN_NAME", "value": run_name},
        {"name": "ASSAY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "ASSAY_RUN_UID", "value": run_uid},
        {"name": "ASSAY_RUN_SPEC", "value": json.dumps(wire_spec, sort_keys=True)},
        {"name": "ASSAY_SHARDS", "value": str(shards)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        # The evaluator calls under the operator's egress rule (the chart sets it on the operator only).
        *({"name": name, "value": os.environ[name]} for name in egress.ENV_NAMES if name in os.environ),
    ]
    if spec.endpoint.api_key_secret_ref:
        env.append(_secret_env("ASSAY_ENDPOINT_API_KEY", spec.endpoint.api_key_secret_ref))
    judge_ref = spec.judge.endpoint.api_key_secret_ref if spec.judge.endpoint else spec.endpoint.api_key_secret_ref
    if judge_ref:
        env.append(_secret_env("ASSAY_JUDGE_API_KEY", judge_ref))
    labels = {LABEL_RUN: run_name, "app.kubernetes.io/name": "assay-evaluator", **MANAGED_BY}
    job_spec: dict[str, Any] = {
        "parallelism": shards,
        "completions": shards,
        "backoffLimit": spec.execution.backoff_limit,
        # Exit code 2 is a permanent configuration error (bad dataset, 401 from the judge...): retrying
        # cannot help, so the Job fails at once instead of spending its backoffLimit.
        "podFailurePolicy": {
            "rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "evaluator", "operator": "In", "values": [2]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
        "activeDeadlineSeconds": spec.execution.active_deadline_seconds,
        "ttlSecondsAfterFinished": 24 * 3600,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "serviceAccountName": evaluator_account(run_name),
                "automountServiceAccountToken": True,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 10,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "runAsGroup": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "evaluator",
                        "image": evaluator_image(spec),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-m", "assay.evaluator"],
                        "env": env,
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if shards > 1:
        job_spec["completionMode"] = "Indexed"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run_name, recreation=recreation),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(kind="QualificationRun", name=run_name, uid=run_uid)],
        },
        "spec": job_spec,
    }


def evaluator_identity(
    *, namespace: str, run_name: str, run_uid: str, spec: qualificationrun.QualificationRunSpec
) -> list[dict[str, Any]]:
    """The run's own evaluator ServiceAccount, Role and RoleBinding, owned by the run (deleted with it).

    The Role allows exactly what the evaluator calls: create ConfigMaps (Kubernetes cannot limit create to
    names), list them (its resume finds its evidence by label; list cannot be limited to names either), and get
    patch only the run's own shard-status ConfigMaps, and get only the dataset ConfigMap it reads. It can therefore
    change no ConfigMap but its own (not the gateway's config), and read no Secret: keys reach it as env from
    the Job's secretKeyRefs."""
    account = evaluator_account(run_name)
    meta = {
        "name": account,
        "namespace": namespace,
        "labels": {**MANAGED_BY, LABEL_RUN: run_name},
        "ownerReferences": [owner_reference(kind="QualificationRun", name=run_name, uid=run_uid, controller=False)],
    }
    statuses = [evaluator_kube.status_configmap_name(run_name, shard) for shard in range(spec.execution.parallelism)]
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "list"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"], "resourceNames": statuses},
    ]
    if spec.dataset.config_map_ref is not None:
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get"],
                "resourceNames": [spec.dataset.config_map_ref.name],
            }
        )
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]

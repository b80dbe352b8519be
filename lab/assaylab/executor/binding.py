"""Pod binding, as kube-scheduler does it: claim a Pending, unscheduled pod once (an annotation written under
a resourceVersion guard, so two executors never run the same pod), then bind it to this executor's node
through `pods/binding` (the API server does not require a Node object for that)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from assaylab.executor import pod_run

log = logging.getLogger("assaylab.executor")

EXECUTOR_ANNOTATION = "assay.dev/executor"
LOG_ANNOTATION = "assay.dev/executor-log"


def claimable(pod: Mapping[str, Any]) -> bool:
    """Nobody's yet: not claimed, not scheduled, not being deleted, no scheduling gates."""
    metadata, spec = pod["metadata"], pod.get("spec", {})
    return (
        (metadata.get("annotations") or {}).get(EXECUTOR_ANNOTATION) is None
        and not spec.get("nodeName")
        and not metadata.get("deletionTimestamp")
        and not spec.get("schedulingGates")  # a scheduler would wait for these too
    )


def claim(core: client.CoreV1Api, pod: Mapping[str, Any], *, executor_id: str, log_path: str) -> dict[str, Any] | None:
    """Mark the pod as ours, only if nobody changed it since we saw it; the claimed pod, or None when it is
    gone or changed (the watch brings the new version)."""
    metadata = pod["metadata"]
    patch = {
        "metadata": {
            "resourceVersion": metadata["resourceVersion"],  # the guard: 409 if anyone wrote first
            "annotations": {EXECUTOR_ANNOTATION: executor_id, LOG_ANNOTATION: log_path},
        }
    }
    try:
        claimed: dict[str, Any] = pod_run.response_json(
            core.patch_namespaced_pod(
                metadata["name"],
                metadata["namespace"],
                patch,
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        )
    except client.ApiException as exc:
        if exc.status in (404, 409):
            return None
        raise
    return claimed


def bind(core: client.CoreV1Api, pod: dict[str, Any]) -> bool:
    """Schedule the pod onto our node; False when it was deleted meanwhile or bound by a real scheduler."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name=name),
        target=client.V1ObjectReference(api_version="v1", kind="Node", name=pod_run.NODE_NAME),
    )
    try:
        core.create_namespaced_pod_binding(name, namespace, binding, _preload_content=False)
    except client.ApiException as exc:
        if exc.status in (404, 409):
            log.info("pod %s/%s: binding refused (%s); leaving it", namespace, name, exc.status)
            return False
        raise
    pod["spec"]["nodeName"] = pod_run.NODE_NAME
    log.info("pod %s/%s: claimed and bound to %s", namespace, name, pod_run.NODE_NAME)
    return True

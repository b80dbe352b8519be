"""Pod status reporting, as a kubelet writes it through `pods/status`: the phase, the container's state
(waiting, running or terminated, with the termination message), restarts, conditions and the pod's addresses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from assaylab.executor import pod_run

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def conditions(current: Sequence[Mapping[str, Any]], wanted: Mapping[str, tuple[bool, str | None]]) -> list[dict]:
    """The pod's conditions with `wanted` ({type: (status, reason)}) applied; a condition keeps its
    lastTransitionTime unless its status changes, as the kubelet keeps it."""
    now = pod_run.now()
    result = {c["type"]: dict(c) for c in current}
    for kind, (status, reason) in wanted.items():
        text = "True" if status else "False"
        previous = result.get(kind, {})
        condition: dict[str, Any] = {"type": kind, "status": text, "lastProbeTime": None}
        condition["lastTransitionTime"] = (
            previous["lastTransitionTime"]
            if previous.get("status") == text and previous.get("lastTransitionTime")
            else now
        )
        if reason:
            condition["reason"] = reason
        result[kind] = condition
    return list(result.values())


def waiting_state(run: pod_run.PodRun) -> dict[str, str]:
    """`state.waiting` for a container that is not running: the last reason reported, else ContainerCreating."""
    reason, message = run.waiting or ("ContainerCreating", "")
    return {"reason": reason, "message": message} if message else {"reason": reason}


def pod_status(
    run: pod_run.PodRun,
    *,
    phase: str,
    container_state: dict[str, Any],
    ready: bool = False,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    """The pod's whole status as a kubelet would write it (a merge patch writes the lists whole)."""
    container = run.container
    terminal = phase in ("Succeeded", "Failed")
    container_status: dict[str, Any] = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in container_state,
        "restartCount": run.restart_count,
        "state": container_state,
    }
    if run.container_id and "waiting" not in container_state:
        container_status["containerID"] = run.container_id
    if run.last_terminated:
        container_status["lastState"] = run.last_terminated
    not_ready = None if ready else ("PodCompleted" if terminal else "ContainersNotReady")
    pod_conditions = conditions(
        run.pod.get("status", {}).get("conditions") or [],
        {
            "PodReadyToStartContainers": (not terminal, None),
            "Initialized": (True, None),
            "Ready": (ready, not_ready),
            "ContainersReady": (ready, not_ready),
            "PodScheduled": (True, None),
        },
    )
    return {
        "phase": phase,
        "startTime": run.start_time,
        "hostIP": pod_run.LOCAL_IP,
        "hostIPs": [{"ip": pod_run.LOCAL_IP}],
        "podIP": pod_run.LOCAL_IP,
        "podIPs": [{"ip": pod_run.LOCAL_IP}],
        "conditions": pod_conditions,
        "containerStatuses": [container_status],
        "reason": reason or None,
        "message": message or None,
    }


def write(
    core: client.CoreV1Api,
    run: pod_run.PodRun,
    *,
    phase: str,
    container_state: dict[str, Any],
    ready: bool = False,
    reason: str = "",
    message: str = "",
) -> None:
    """Decide the pod's status (`pod_status`) and send it; kept in `run.unsent_status` until it is written."""
    run.unsent_status = pod_status(
        run, phase=phase, container_state=container_state, ready=ready, reason=reason, message=message
    )
    send(core, run)


def send(core: client.CoreV1Api, run: pod_run.PodRun) -> None:
    """Write the last status decided for the pod (`run.unsent_status`) through pods/status; an API error is
    raised with the status kept, so the reconcile loop sends it again. A deleted pod needs no status."""
    if run.unsent_status is None:
        return
    try:
        updated = pod_run.response_json(
            core.patch_namespaced_pod_status(
                run.name,
                run.namespace,
                {"status": run.unsent_status},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    else:
        run.pod = updated
    run.unsent_status = None


def with_local_addresses(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as it will look once running here, for fieldRefs to status.podIP and friends."""
    status = {
        **pod.get("status", {}),
        "hostIP": pod_run.LOCAL_IP,
        "podIP": pod_run.LOCAL_IP,
        "hostIPs": [{"ip": pod_run.LOCAL_IP}],
        "podIPs": [{"ip": pod_run.LOCAL_IP}],
    }
    return {**pod, "spec": {**pod["spec"], "nodeName": pod_run.NODE_NAME}, "status": status}

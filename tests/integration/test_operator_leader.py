"""Two operator replicas with leader election on a real coordination.k8s.io Lease: only the leader acts; SIGKILLing
it at random points of a promotion or a rollback hands over to the standby, and every run converges with the
baseline snapshot byte-identical, one evaluation Job per QualificationRun, and the hand-over time measured."""

from __future__ import annotations

import base64
import json
import pathlib
import random
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from test_route_writer import MASTER_KEY, LiteLLMAdminContract, ProxyState, admin_policy

from assaylab.operator_process import OperatorProcess
from conftest import Kube, wait_for

pytestmark = pytest.mark.integration

RUNS = 20
LEASE = {"ASSAY_LEASE_DURATION": "3", "ASSAY_LEASE_RENEW_DEADLINE": "2", "ASSAY_LEASE_RETRY": "0.25"}


class Replicas:
    """Two `assay operator` processes sharing one Lease; a killed one is restarted as a standby."""

    def __init__(self, kube: Kube, namespace: str, log_dir: pathlib.Path) -> None:
        self.kube = kube
        self.env = {
            "ASSAY_LEADER_ELECTION": "true",
            "ASSAY_LEASE_NAMESPACE": namespace,
            "ASSAY_LEASE_NAME": "assay-test-leader",
            **LEASE,
        }
        self.log_dir = log_dir
        self.started = 0
        self.processes: list[OperatorProcess] = []

    def spawn(self, *, wait_for: str) -> OperatorProcess:
        self.started += 1
        process = OperatorProcess(
            self.kube.kubeconfig,
            log_path=self.log_dir / f"operator-{self.started}.log",
            reconcile_interval=0.5,
            extra_env=self.env,
        ).start(wait_for=wait_for, timeout=90)
        self.processes.append(process)
        return process

    def leader(self) -> OperatorProcess:
        return wait_for(
            lambda: next((p for p in self.processes if p.alive() and p.ready()), None), timeout=30, what="a leader"
        )

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def replicas(kube: Kube, namespace: str, tmp_path: pathlib.Path) -> Iterator[Replicas]:
    if any(thread.name == "assay-operator" for thread in threading.enumerate()):
        pytest.fail("an in-process assay operator still runs in this session (tests/conftest.py `operator`)")
    running = Replicas(kube, namespace, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_killing_the_leader_mid_promotion_or_rollback_hands_over_and_converges(
    kube: Kube, namespace: str, replicas: Replicas
):
    api = kube.api_client()
    custom, core, batch = client.CustomObjectsApi(api), client.CoreV1Api(api), client.BatchV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "prompts"}, "data": {"prompts.jsonl": "{}\n"}})
    key = base64.b64encode(MASTER_KEY.encode()).decode()
    core.create_namespaced_secret(namespace, {"metadata": {"name": "litellm-master"}, "data": {"key": key}})
    state = ProxyState(
        master_key=MASTER_KEY,
        model_groups=["gpt-big", "gpt-small"],
        db_router_settings={"model_group_alias": {"route-0": "gpt-big"}},
    )
    rng = random.Random(20261203)

    def status() -> dict[str, Any]:
        obj: Any = custom.get_namespaced_custom_object("assay.dev", "v1alpha1", namespace, "routepolicies", "proxy-0")
        return dict(obj.get("status") or {})

    def settled(phase: str) -> dict[str, Any] | None:
        current = status()
        return current if current.get("phase") == phase and "pending" not in current else None

    with LiteLLMAdminContract(state) as proxy:
        first = replicas.spawn(wait_for="ready")
        replicas.spawn(wait_for="live")
        assert replicas.leader() is first
        time.sleep(1)
        assert sum(p.ready() for p in replicas.processes) == 1, "only one replica leads"

        custom.create_namespaced_custom_object(
            "assay.dev", "v1alpha1", namespace, "routepolicies", admin_policy(0, proxy.url)
        )
        snapshot = wait_for(lambda: status().get("lastKnownGood"), timeout=60, what="baseline snapshot")
        frozen = json.dumps(snapshot, sort_keys=True)

        handovers: list[float] = []
        for run in range(RUNS):
            promote = run % 2 == 0
            annotation = {"assay.dev/promote": f"small@{run}"} if promote else {"assay.dev/rollback": str(run)}
            leader = replicas.leader()
            custom.patch_namespaced_custom_object(
                "assay.dev",
                "v1alpha1",
                namespace,
                "routepolicies",
                "proxy-0",
                {"metadata": {"annotations": annotation}},
            )
            time.sleep(rng.uniform(0.0, 0.5))  # somewhere in intent, write, read-back or record
            killed_at = time.monotonic()
            leader.kill()
            successor = replicas.leader()
            handovers.append(time.monotonic() - killed_at)
            assert successor is not leader
            replicas.processes.remove(leader)
            replicas.spawn(wait_for="live")  # the killed pod comes back as a standby

            wanted = "Promoted" if promote else "RolledBack"
            final = wait_for(lambda wanted=wanted: settled(wanted), timeout=60, what=f"run {run}: {wanted}")
            assert state.aliases()["route-0"] == ("gpt-small" if promote else "gpt-big"), f"run {run}"
            assert json.dumps(final["lastKnownGood"], sort_keys=True) == frozen, f"run {run}: snapshot changed"
            assert final["activeRoute"]["model"] == ("gpt-small" if promote else "gpt-big")

        runs: Any = custom.list_namespaced_custom_object("assay.dev", "v1alpha1", namespace, "qualificationruns")
        jobs = batch.list_namespaced_job(namespace).items
        for item in runs["items"]:
            owned = [
                j for j in jobs if any(o.uid == item["metadata"]["uid"] for o in j.metadata.owner_references or [])
            ]
            assert len(owned) <= 1, f"{item['metadata']['name']} has {len(owned)} Jobs"
        assert len(jobs) <= len(runs["items"])

    print(
        f"hand-over after SIGKILL over {RUNS} runs: median {statistics.median(handovers):.2f} s, "
        f"max {max(handovers):.2f} s (lease 3 s, retry 0.25 s)"
    )

"""Promotion and rollback by the operator (a real `assay operator` process with its alert webhook) through the
weight-based adapters, against a real kube-apiserver holding the upstream CRDs (Envoy AI Gateway's
AIGatewayRoute, Gateway API's HTTPRoute): the route object's weights move to the candidate on an annotation,
step through a canary, and go back to the baseline snapshot when a drift alert reaches the webhook.

No executor runs: the policies' QualificationRuns stay Pending, which promotion by annotation does not need."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import pathlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client
from test_gateways_routes import RESOURCES, upstream_crds  # noqa: F401 - a fixture, requested by name below

from assaylab import alertmanager, controlplane
from assaylab.operator_process import OperatorProcess
from conftest import Kube, wait_for

pytestmark = pytest.mark.integration

TOKEN = "crd-adapters-webhook-token"
ALERT_NAME = "LLMRouteQualityDrift"
ROUTE_OBJECT = "chat"
BASELINE_BACKEND = "gpt-big"
CANDIDATE_BACKENDS = {"small": "small-backend", "mid": "mid-backend"}
UNOWNED = {"name": "shadow", "weight": 3}


# --- objects ------------------------------------------------------------------------------------------------


def route_object(kind: str) -> dict[str, Any]:
    """A route whose rule 0 sends everything to the baseline backend, keeps one weight-0 backendRef per
    candidate and a shadow backend assay does not own."""
    resource = RESOURCES[kind]
    port = {"port": 8000} if kind == "HTTPRoute" else {}
    refs = [
        {"name": BASELINE_BACKEND, "weight": 100, **port},
        *({"name": backend, "weight": 0, **port} for backend in CANDIDATE_BACKENDS.values()),
        {**UNOWNED, **port},
    ]
    return {
        "apiVersion": f"{resource.group}/{resource.versions[0]}",
        "kind": resource.kind,
        "metadata": {"name": ROUTE_OBJECT},
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": refs}]},
    }


def policy_object(name: str, kind: str, *, promotion: dict[str, Any] | None = None) -> dict[str, Any]:
    """A RoutePolicy on the route object; promotion only by hand unless `promotion` says otherwise. Its
    qualification points at the `prompts` ConfigMap so the policy is Ready; nothing evaluates it."""
    return {
        "apiVersion": "assay.dev/v1alpha1",
        "kind": "RoutePolicy",
        "metadata": {"name": name},
        "spec": {
            "promptType": name,
            "gateway": {"kind": kind, "routeRef": {"name": ROUTE_OBJECT}},
            "baseline": {"model": BASELINE_BACKEND},
            "candidates": [
                {"name": candidate, "model": f"model-{candidate}", "backend": backend}
                for candidate, backend in CANDIDATE_BACKENDS.items()
            ],
            "qualification": {
                "endpoint": {"url": "http://127.0.0.1:9/v1"},
                "dataset": {"configMapRef": {"name": "prompts", "key": "prompts.jsonl"}},
                "judge": {"model": "judge-large"},
            },
            "promotion": promotion or {"automatic": False},
            "rollback": {"alertSelector": {"matchLabels": {"alertname": ALERT_NAME, "route": name}}},
        },
    }


_firings = itertools.count(1)


def alert_payload(namespace: str, route: str) -> dict[str, Any]:
    """An Alertmanager v4 delivery of a new firing (fresh fingerprint and startsAt) for one policy's route."""
    firing = next(_firings)
    starts_at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=firing)
    labels = {"alertname": ALERT_NAME, "route": route, "namespace": namespace}
    stamp = starts_at.isoformat().replace("+00:00", "Z")
    return alertmanager.notification(alertmanager.alert(labels, starts_at=stamp, fingerprint=f"{firing:016x}"))


# --- the cluster side -----------------------------------------------------------------------------------------


class Cluster:
    """One namespace of the test control plane: the route object, policies and the operator's endpoints."""

    def __init__(self, api: client.ApiClient, namespace: str, kind: str, operator: OperatorProcess) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.kind = kind
        self.resource = RESOURCES[kind]
        self.operator = operator

    def setup(self) -> Cluster:
        client.CoreV1Api(self.api).create_namespaced_config_map(
            self.namespace, {"metadata": {"name": "prompts"}, "data": {"prompts.jsonl": "{}\n"}}
        )
        resource = self.resource
        self.custom.create_namespaced_custom_object(
            resource.group, resource.versions[0], self.namespace, resource.plural, route_object(self.kind)
        )
        return self

    def weights(self) -> dict[str, int]:
        """The owned backends' weights as they stand in the route object."""
        obj: Any = self.custom.get_namespaced_custom_object(
            self.resource.group, self.resource.versions[0], self.namespace, self.resource.plural, ROUTE_OBJECT
        )
        refs = obj["spec"]["rules"][0]["backendRefs"]
        assert {"name": UNOWNED["name"], "weight": UNOWNED["weight"]}.items() <= refs[-1].items()
        return {ref["name"]: ref["weight"] for ref in refs[:-1]}

    def create_policy(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object("assay.dev", "v1alpha1", self.namespace, "routepolicies", body)

    def status(self, name: str) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(
            "assay.dev", "v1alpha1", self.namespace, "routepolicies", name
        )
        return dict(obj.get("status") or {})

    def annotate(self, name: str, key: str, value: str) -> None:
        self.custom.patch_namespaced_custom_object(
            "assay.dev", "v1alpha1", self.namespace, "routepolicies", name, {"metadata": {"annotations": {key: value}}}
        )

    def wait_phase(self, name: str, phase: str, *, timeout: float = 30) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (s := self.status(name)).get("phase") == phase and s, timeout=timeout, what=f"{name} {phase}"
            )
        )

    def send_alert(self, route: str) -> httpx.Response:
        assert self.operator.webhook_port
        return httpx.post(
            f"http://127.0.0.1:{self.operator.webhook_port}/alerts",
            json=alert_payload(self.namespace, route),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )

    def metric(self, name: str) -> float:
        """One sample of the operator's /metrics (0 when not exported yet)."""
        text = httpx.get(f"http://127.0.0.1:{self.operator.metrics_port}/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@contextlib.contextmanager
def operator_process(kube: Kube, log_dir: pathlib.Path, **env: str) -> Iterator[OperatorProcess]:
    """`assay operator` as a process against the test control plane, with its alert webhook; stopped on exit.

    The session's in-process operator (tests/conftest.py `operator`) watches every namespace: next to it the
    process would race another reconciler, and killing it would prove nothing, so the test is skipped then."""
    if any(thread.name == "assay-operator" for thread in threading.enumerate()):
        pytest.skip("an in-process assay operator runs in this session; run this module on its own")
    running = OperatorProcess(
        kube.kubeconfig,
        log_path=log_dir / "operator.log",
        reconcile_interval=0.5,
        webhook_port=controlplane.free_port(),
        webhook_token=TOKEN,
        extra_env=env,
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def operator(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with operator_process(kube, tmp_path_factory.mktemp("operator")) as running:  # kept by pytest: the log
        yield running


@pytest.fixture(params=["EnvoyAIGatewayRoute", "HTTPRoute"])
def cluster(request: pytest.FixtureRequest, kube: Kube, namespace: str, operator: OperatorProcess) -> Cluster:
    request.getfixturevalue("upstream_crds")
    return Cluster(kube.api_client(), namespace, str(request.param), operator).setup()


# --- specifications -------------------------------------------------------------------------------------------


def test_promote_annotation_moves_the_weights_and_a_drift_alert_restores_the_snapshot(cluster: Cluster):
    cluster.create_policy(policy_object("summary", cluster.kind))
    ready = wait_for(lambda: (s := cluster.status("summary")).get("lastKnownGood") and s, what="baseline snapshot")
    baseline = {BASELINE_BACKEND: 100, "small-backend": 0, "mid-backend": 0}
    assert ready["lastKnownGood"]["weights"] == baseline
    assert cluster.weights() == baseline
    rollbacks = cluster.metric("assay_alert_to_rollback_seconds_count")

    cluster.annotate("summary", "assay.dev/promote", "small")
    promoted = cluster.wait_phase("summary", "Promoted")
    assert cluster.weights() == {BASELINE_BACKEND: 0, "small-backend": 100, "mid-backend": 0}
    assert promoted["activeRoute"]["weights"] == cluster.weights()
    assert promoted["promotedCandidate"] == "small"
    assert "pending" not in promoted, "the result is recorded together with clearing the intent"

    answer = cluster.send_alert("summary")
    assert answer.status_code == 200, answer.text
    assert [ref.split("/")[1] for ref in answer.json()["restored"]] == ["summary"]
    # Restored and recorded before the webhook answers.
    assert cluster.weights() == baseline
    rolled = cluster.status("summary")
    assert rolled["phase"] == "RolledBack" and "pending" not in rolled
    assert rolled["activeRoute"]["fingerprint"] == ready["lastKnownGood"]["fingerprint"]
    assert rolled["lastKnownGood"] == ready["lastKnownGood"]

    time.sleep(2)  # several reconcile intervals: nothing re-runs the finished rollback
    assert cluster.metric("assay_alert_to_rollback_seconds_count") == rollbacks + 1
    assert cluster.status("summary")["phase"] == "RolledBack"
    assert cluster.weights() == baseline


def test_canary_steps_through_the_weights_then_an_alert_restores_the_snapshot(cluster: Cluster):
    canary = {"automatic": False, "strategy": "Canary", "steps": [10, 50, 100], "soakSeconds": 1}
    cluster.create_policy(policy_object("canary", cluster.kind, promotion=canary))
    lkg = wait_for(lambda: cluster.status("canary").get("lastKnownGood"), what="baseline snapshot")

    cluster.annotate("canary", "assay.dev/promote", "mid")
    seen: list[tuple[int, int]] = []
    phases: set[str] = set()

    def promoted() -> bool:
        # Status first: the route is written before the status that records it, so the weights read next
        # are at least as new as the phase.
        phase = cluster.status("canary").get("phase")
        phases.add(str(phase))
        weights = cluster.weights()
        step = (weights[BASELINE_BACKEND], weights["mid-backend"])
        if not seen or seen[-1] != step:
            seen.append(step)
        return phase == "Promoted"

    started = time.monotonic()
    wait_for(promoted, interval=0.05, what="canary to reach 100%")
    assert seen[-3:] == [(90, 10), (50, 50), (0, 100)]
    assert "Promoting" in phases
    assert time.monotonic() - started >= 2, "each of the two later steps waited for the 1 s soak"
    assert cluster.weights()["small-backend"] == 0

    assert cluster.send_alert("canary").status_code == 200
    assert cluster.weights() == {BASELINE_BACKEND: 100, "small-backend": 0, "mid-backend": 0}
    rolled = cluster.status("canary")
    assert rolled["phase"] == "RolledBack" and rolled["lastKnownGood"] == lkg
    assert "canaryStep" not in rolled and "pending" not in rolled


def test_an_alert_mid_canary_stops_it_at_the_baseline(cluster: Cluster):
    canary = {"automatic": False, "strategy": "Canary", "steps": [10, 50, 100], "soakSeconds": 30}
    cluster.create_policy(policy_object("halted", cluster.kind, promotion=canary))
    wait_for(lambda: cluster.status("halted").get("lastKnownGood"), what="baseline snapshot")
    cluster.annotate("halted", "assay.dev/promote", "small")
    soaking = cluster.wait_phase("halted", "Promoting")  # the first step written and recorded
    assert cluster.weights()["small-backend"] == 10 and soaking["pending"]["step"] == 1

    assert cluster.send_alert("halted").status_code == 200
    assert cluster.weights() == {BASELINE_BACKEND: 100, "small-backend": 0, "mid-backend": 0}
    time.sleep(1.5)  # the abandoned canary does not resume
    rolled = cluster.status("halted")
    assert rolled["phase"] == "RolledBack" and "pending" not in rolled
    assert cluster.weights()["small-backend"] == 0

"""The operator is SIGKILLed at random moments while it promotes and rolls back, and restarted, over and over:
every time the policy converges to the phase it was heading to, the gateway route is what status.activeRoute
says, and status.lastKnownGood is byte for byte the first snapshot (the baseline route is never lost).

Two adapters: LiteLLM's ConfigMap (two writes per switch: the config key, then the Deployment's checksum
annotation that rolls LiteLLM; a plain ConfigMap and Deployment, no proxy) and Gateway API's HTTPRoute
(one weight patch). A drift alert whose delivery died with the operator is sent again after the restart, as
Alertmanager re-sends a firing it could not deliver. ASSAY_KILL_SEED picks the kill points (default 7)."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from test_crd_adapters_operator import TOKEN, Cluster, alert_payload, operator_process, policy_object
from test_gateways_routes import upstream_crds  # noqa: F401 - a fixture, requested by name below

from assay.gateways import litellm_configmap
from assaylab import litellm as litellm_runner
from assaylab.operator_process import OperatorProcess
from conftest import Kube, wait_for

pytestmark = pytest.mark.integration

KILL_POINTS = 20  # per adapter
MAX_DELAY = 0.3
POLICY = "summary"
CONFIG_MAP, DEPLOYMENT, KEY = "litellm-config", "litellm", "config.yaml"
CANDIDATE_MODELS = {"small": "model-small", "mid": "model-mid"}


class Route:
    """The route as the gateway object holds it, read without assay's adapter code."""

    def __init__(self, api: client.ApiClient, namespace: str, kind: str, operator: OperatorProcess) -> None:
        self.api = api
        self.namespace = namespace
        self.kind = kind
        self.cluster = Cluster(api, namespace, "HTTPRoute", operator) if kind == "HTTPRoute" else None

    def setup(self) -> None:
        if self.cluster is not None:
            self.cluster.setup()
            return
        core = client.CoreV1Api(self.api)
        core.create_namespaced_config_map(
            self.namespace, {"metadata": {"name": "prompts"}, "data": {"prompts.jsonl": "{}\n"}}
        )
        config = litellm_runner.build_config(
            simulator_url="http://127.0.0.1:9",
            models=["gpt-big", *CANDIDATE_MODELS.values()],
            aliases={POLICY: "gpt-big", "other-team": "model-mid"},
        )
        core.create_namespaced_config_map(
            self.namespace, {"metadata": {"name": CONFIG_MAP}, "data": {KEY: yaml.safe_dump(config, sort_keys=False)}}
        )
        labels = {"app": DEPLOYMENT}
        client.AppsV1Api(self.api).create_namespaced_deployment(
            self.namespace,
            {
                "metadata": {"name": DEPLOYMENT},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "litellm", "image": "ghcr.io/berriai/litellm:main-v1.108.7"}]},
                    },
                },
            },
        )

    def policy(self) -> dict[str, Any]:
        body = policy_object(POLICY, "HTTPRoute")
        if self.kind == "LiteLLMConfigMap":
            body["spec"]["gateway"] = {
                "kind": "LiteLLMConfigMap",
                "configMapRef": {"name": CONFIG_MAP, "key": KEY},
                "deploymentRef": {"name": DEPLOYMENT},
            }
            body["spec"]["baseline"] = {"model": "gpt-big"}
            body["spec"]["candidates"] = [{"name": name, "model": model} for name, model in CANDIDATE_MODELS.items()]
        return body

    def matches(self, active: dict[str, Any]) -> bool:
        """The gateway object serves exactly status.activeRoute (and, for LiteLLM, the pods were rolled to it)."""
        if self.cluster is not None:
            return self.cluster.weights() == active.get("weights")
        text = client.CoreV1Api(self.api).read_namespaced_config_map(CONFIG_MAP, self.namespace).data[KEY]
        config = yaml.safe_load(text)
        template = client.AppsV1Api(self.api).read_namespaced_deployment(DEPLOYMENT, self.namespace).spec.template
        checksum = (template.metadata.annotations or {}).get(litellm_configmap.CONFIG_CHECKSUM_ANNOTATION)
        aliases = config["router_settings"]["model_group_alias"]
        return (
            aliases[POLICY] == active.get("model")
            and aliases["other-team"] == "model-mid"
            and checksum == litellm_configmap.config_checksum(text)
        )


@pytest.fixture(params=["LiteLLMConfigMap", "HTTPRoute"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "HTTPRoute":
        request.getfixturevalue("upstream_crds")
    return str(request.param)


@pytest.fixture
def operator(kube: Kube, tmp_path: pathlib.Path) -> Iterator[OperatorProcess]:
    with operator_process(kube, tmp_path) as running:
        yield running


def in_background(action: Callable[[], Any]) -> dict[str, Any]:
    """Run `action` in a thread; the returned dict gets "result" or "error" when it ends."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = action()
        except Exception as exc:  # the operator died mid-request: that is the point
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


class Policy:
    """The RoutePolicy under test: its status, and commands by annotation."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object("assay.dev", "v1alpha1", self.namespace, "routepolicies", body)

    def status(self) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(
            "assay.dev", "v1alpha1", self.namespace, "routepolicies", POLICY
        )
        return dict(obj.get("status") or {})

    def annotate(self, key: str, value: str) -> None:
        patch = {"metadata": {"annotations": {key: value}}}
        self.custom.patch_namespaced_custom_object(
            "assay.dev", "v1alpha1", self.namespace, "routepolicies", POLICY, patch
        )

    def wait_until_acting(self, expected: str, *, timeout: float = 10) -> None:
        """Return as soon as the operator has written its intent (or already finished)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.status()
            if now.get("pending") or now.get("phase") == expected:
                return
            time.sleep(0.005)


def test_killed_operator_converges_and_never_loses_the_baseline(kube: Kube, namespace: str, kind: str, operator):
    seed = int(os.environ.get("ASSAY_KILL_SEED", "7"))
    rng = random.Random(f"{seed}-{kind}")
    route = Route(kube.api_client(), namespace, kind, operator)
    route.setup()
    policy = Policy(kube.api_client(), namespace)
    policy.create(route.policy())
    first = wait_for(lambda: policy.status().get("lastKnownGood"), what="baseline snapshot")
    baseline_bytes = json.dumps(first)
    candidates = itertools.cycle(CANDIDATE_MODELS)  # each distinct annotation value is one command
    log: list[str] = []
    landings: dict[str, int] = {}

    for point in range(KILL_POINTS):
        alert: dict[str, Any] | None = None
        if policy.status().get("phase") != "Promoted":
            candidate = next(candidates)
            policy.annotate("assay.dev/promote", candidate)
            action, expected = f"promote {candidate}", "Promoted"
        elif rng.random() < 0.5:
            alert = alert_payload(namespace, POLICY)
            delivery = in_background(lambda payload=alert: post_alert(operator, payload))
            action, expected = "alert", "RolledBack"
        else:
            policy.annotate("assay.dev/rollback", f"kill-{point}")
            action, expected = "rollback annotation", "RolledBack"
        # The webhook acts on receipt; an annotation first travels through a watch, so half of those kills
        # wait for the intent to show up and land inside the action.
        if alert is None and rng.random() < 0.5:
            policy.wait_until_acting(expected)
            delay, after = rng.uniform(0, 0.05), "the intent was seen"
        else:
            delay, after = rng.uniform(0, MAX_DELAY), "the command"
        time.sleep(delay)
        operator.kill()
        landed = where_it_stopped(policy.status(), route, expected)
        landings[landed] = landings.get(landed, 0) + 1
        log.append(f"{point}: {action}, killed {delay * 1000:.0f} ms after {after} ({landed})")
        operator.start()
        if alert is not None:
            delivery["thread"].join(30)
            answered = delivery.get("result")
            if answered is None or answered.status_code != 200:
                log[-1] += f", alert re-sent (first delivery: {delivery.get('error') or answered.status_code})"
                assert post_alert(operator, alert).status_code == 200

        def converged(expected: str = expected) -> dict[str, Any] | None:
            now = policy.status()
            if now.get("phase") != expected or now.get("pending") or not route.matches(now["activeRoute"]):
                return None
            return now

        try:
            settled = wait_for(converged, timeout=30, what=f"{expected} after kill point {point}")
        except AssertionError:
            raise AssertionError(f"seed {seed}: {'; '.join(log)}; status: {policy.status()}") from None
        assert json.dumps(settled["lastKnownGood"]) == baseline_bytes, "; ".join(log)
        if expected == "RolledBack":
            assert settled["activeRoute"]["fingerprint"] == first["fingerprint"], "; ".join(log)
        else:
            assert settled["activeRoute"]["candidate"] == candidate, "; ".join(log)
    print("\n".join(log), landings, sep="\n")


def where_it_stopped(status: dict[str, Any], route: Route, expected: str) -> str:
    """What the dead operator left behind: the action not begun, its intent written (the route switched or
    not yet), or the action finished."""
    if status.get("pending"):
        switched = route.matches(status.get("activeRoute") or {})
        return "intent written, " + ("route as recorded" if switched else "route not as recorded")
    return "finished" if status.get("phase") == expected else "not begun"


def post_alert(operator: OperatorProcess, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{operator.webhook_port}/alerts",
        json=payload,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )

"""Promotion and rollback through a real LiteLLM proxy whose config lives in a ConfigMap: the operator
switches the route alias, LiteLLM is rolled, the candidate answers; a drift alert arrives at the operator's
webhook and the baseline answers again. The baseline snapshot survives everything."""

from __future__ import annotations

import time

import httpx
import pytest
from kubernetes import client

import realparts
from assay.gateways import litellm_config
from assaylab import alertmanager, litellm, simulator
from assaylab.stack import LocalStack
from conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]

TOKEN = "test-webhook-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("stack")  # kept by pytest: operator and LiteLLM logs for failures
    with LocalStack(namespace="promo", executor=False, webhook_token=TOKEN, workdir=workdir) as running:
        running.put_dataset("prompts", simulator.make_dataset(20, seed=1))
        yield running


def _served_by(stack: LocalStack) -> str | None:
    """The model that answered a request for the route; None while LiteLLM is restarting."""
    try:
        response = httpx.post(
            f"{stack.litellm_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
            json={"model": stack.route, "messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        )
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    return response.headers["x-litellm-model-name"].split("/", 1)[-1]


def _status(stack: LocalStack, name: str) -> dict:
    return stack.get("RoutePolicy", name).get("status") or {}


def _condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def _alert(stack: LocalStack, *, token: str = TOKEN, status: str = "firing", body: object = None) -> httpx.Response:
    labels = {"alertname": "LLMRouteQualityDrift", "route": stack.route, "namespace": stack.namespace}
    firing = alertmanager.alert(labels, status=status, starts_at="2026-11-30T12:00:00Z", fingerprint="5f7d3a9c1b2e4d60")
    payload = body if body is not None else alertmanager.notification(firing)
    return httpx.post(
        f"http://127.0.0.1:{stack.webhook_port}/alerts",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_promote_then_alert_rolls_back_through_real_litellm(stack):
    stack.create(stack.policy("route-a", promotion={"automatic": False}))
    lkg = wait_for(lambda: _status(stack, "route-a").get("lastKnownGood"), what="baseline snapshot", timeout=60)
    assert lkg["model"] == "gpt-4o"
    assert _served_by(stack) == "gpt-4o"

    client.CustomObjectsApi(stack.api).patch_namespaced_custom_object(
        "assay.dev",
        "v1alpha1",
        stack.namespace,
        "routepolicies",
        "route-a",
        {"metadata": {"annotations": {"assay.dev/promote": "mini"}}},
    )
    promoted = wait_for(
        lambda: (s := _status(stack, "route-a")).get("phase") == "Promoted" and s, timeout=60, what="Promoted"
    )
    assert promoted["activeRoute"]["model"] == "gpt-4o-mini"
    assert promoted["promotedCandidate"] == "mini"
    assert _condition(promoted, "Promoted")["status"] == "True"
    wait_for(lambda: _served_by(stack) == "gpt-4o-mini", timeout=90, interval=1, what="LiteLLM serving the candidate")

    # Abuse cases answer correctly and change nothing.
    assert _alert(stack, token="wrong").status_code == 401
    assert _alert(stack, body={"version": "4", "alerts": "nope"}).status_code == 400
    assert _alert(stack, status="resolved").json()["ignored"]["resolved"] == 1
    assert _status(stack, "route-a")["phase"] == "Promoted"

    started = time.monotonic()
    answer = _alert(stack)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert answer.json()["restored"] == [f"{stack.namespace}/route-a"]
    rolled = _status(stack, "route-a")
    assert rolled["phase"] == "RolledBack", "the route is restored before the webhook answers"
    assert rolled["activeRoute"]["model"] == "gpt-4o"
    assert rolled["lastKnownGood"] == lkg, "the baseline snapshot is never rewritten"
    assert _condition(rolled, "RolledBack")["reason"] == "DriftAlert"
    assert "LLMRouteQualityDrift" in _condition(rolled, "RolledBack")["message"]
    assert took < 30
    wait_for(lambda: _served_by(stack) == "gpt-4o", timeout=90, interval=1, what="LiteLLM serving the baseline")

    # The same firing again is a duplicate; a rolled-back policy does not promote by itself.
    assert _alert(stack).json()["ignored"]["duplicate"] == 1
    time.sleep(3)
    assert _status(stack, "route-a")["phase"] == "RolledBack"


def test_manual_rollback_annotation_restores_the_snapshot(stack):
    stack.create(stack.policy("route-b", gateway={"route": "route-b-alias"}, promotion={"automatic": False}))
    wait_for(lambda: _status(stack, "route-b").get("lastKnownGood"), what="baseline snapshot", timeout=60)
    api = client.CustomObjectsApi(stack.api)
    api.patch_namespaced_custom_object(
        "assay.dev",
        "v1alpha1",
        stack.namespace,
        "routepolicies",
        "route-b",
        {"metadata": {"annotations": {"assay.dev/promote": "tiny"}}},
    )
    wait_for(lambda: _status(stack, "route-b").get("phase") == "Promoted", timeout=60, what="Promoted")
    api.patch_namespaced_custom_object(
        "assay.dev",
        "v1alpha1",
        stack.namespace,
        "routepolicies",
        "route-b",
        {"metadata": {"annotations": {"assay.dev/rollback": "now"}}},
    )
    rolled = wait_for(
        lambda: (s := _status(stack, "route-b")).get("phase") == "RolledBack" and s, timeout=60, what="RolledBack"
    )
    assert _condition(rolled, "RolledBack")["reason"] == "Manual"
    assert rolled["activeRoute"]["fingerprint"] == rolled["lastKnownGood"]["fingerprint"]
    assert rolled["activeRoute"].get("model") == rolled["lastKnownGood"].get("model")
    assert "candidate" not in rolled["activeRoute"], "a rolled-back route names no candidate"

    # A hand edit of the alias is reported as Degraded, not silently overwritten.
    core = client.CoreV1Api(stack.api)
    cm = core.read_namespaced_config_map("litellm-config", stack.namespace)
    cm.data["config.yaml"] = litellm_config.set_alias(cm.data["config.yaml"], "route-b-alias", "tiny-llm")
    core.replace_namespaced_config_map("litellm-config", stack.namespace, cm)
    degraded = wait_for(
        lambda: (s := _status(stack, "route-b")) and _condition(s, "Degraded").get("status") == "True" and s,
        timeout=30,
        what="Degraded",
    )
    assert _condition(degraded, "Degraded")["reason"] == "RouteChangedExternally"
    time.sleep(2)
    assert (
        "route-b-alias: tiny-llm"
        in core.read_namespaced_config_map("litellm-config", stack.namespace).data["config.yaml"]
    ), "assay does not overwrite a hand edit"


def test_deleting_a_promoted_policy_restores_the_baseline_route(stack):
    stack.create(stack.policy("route-c", gateway={"route": "route-c-alias"}, promotion={"automatic": False}))
    wait_for(lambda: _status(stack, "route-c").get("lastKnownGood"), what="baseline snapshot", timeout=60)
    api = client.CustomObjectsApi(stack.api)
    api.patch_namespaced_custom_object(
        "assay.dev",
        "v1alpha1",
        stack.namespace,
        "routepolicies",
        "route-c",
        {"metadata": {"annotations": {"assay.dev/promote": "mini@1"}}},
    )
    wait_for(lambda: _status(stack, "route-c").get("phase") == "Promoted", timeout=60, what="Promoted")
    core = client.CoreV1Api(stack.api)
    config = lambda: core.read_namespaced_config_map("litellm-config", stack.namespace).data["config.yaml"]  # noqa: E731
    assert "route-c-alias: gpt-4o-mini" in config()

    api.delete_namespaced_custom_object("assay.dev", "v1alpha1", stack.namespace, "routepolicies", "route-c")

    def gone() -> bool:
        try:
            stack.get("RoutePolicy", "route-c")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60, what="the policy to be deleted")
    assert "route-c-alias" not in config(), "the alias the policy added is gone again (the snapshot had none)"

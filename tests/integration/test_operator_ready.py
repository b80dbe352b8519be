"""The operator, in-process against a real kube-apiserver with token auth, reconciles RoutePolicies:
Ready with the right observedGeneration, updated on spec changes, and Ready=False naming a missing
Secret, ConfigMap, route object or route backend until it appears."""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml
from kubernetes import client
from test_gateways_routes import upstream_crds  # noqa: F401 - a fixture: the upstream HTTPRoute CRD

from conftest import wait_for

pytestmark = pytest.mark.integration

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "routepolicy-litellm.yaml"
GROUP, VERSION, PLURAL = "assay.dev", "v1alpha1", "routepolicies"


def _policy() -> dict:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def _get(kube, namespace: str, name: str) -> dict:
    return client.CustomObjectsApi(kube.api_client()).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )


def _ready(obj: dict) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)


def _create_refs(kube, namespace: str, *, secret: bool = True) -> None:
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "support-summary-traffic"}, "data": {"prompts.jsonl": "{}"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "litellm-config"}, "data": {"config.yaml": "model_list: []"}}
    )
    if secret:
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": "litellm-keys"}, "stringData": {"api-key": "sk-test"}}
        )


def test_new_policy_becomes_ready_with_observed_generation(kube, operator, namespace):
    _create_refs(kube, namespace)
    api = client.CustomObjectsApi(kube.api_client())
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _policy())

    obj = wait_for(
        lambda: (o := _get(kube, namespace, "support-summary")) and (_ready(o) or {}).get("status") == "True" and o,
        what="Ready=True",
    )
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 1
    assert _ready(obj)["reason"] == "ReferencesResolved"
    assert _ready(obj)["observedGeneration"] == 1
    assert obj["status"]["phase"] in {"Qualifying", "Pending"}

    api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "support-summary",
        {"spec": {"qualification": {"test": {"margin": 0.1}}}},
    )
    updated = wait_for(
        lambda: (o := _get(kube, namespace, "support-summary"))["status"].get("observedGeneration") == 2 and o,
        what="observedGeneration 2",
    )
    assert _ready(updated)["observedGeneration"] == 2
    assert _ready(updated)["lastTransitionTime"] == _ready(obj)["lastTransitionTime"], "unchanged status kept"


def test_missing_secret_is_named_and_policy_recovers_when_it_appears(kube, operator, namespace):
    _create_refs(kube, namespace, secret=False)
    api = client.CustomObjectsApi(kube.api_client())
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _policy())

    obj = wait_for(lambda: _ready(_get(kube, namespace, "support-summary")), what="a Ready condition")
    assert obj["status"] == "False"
    assert obj["reason"] == "SecretNotFound"
    assert "litellm-keys" in obj["message"] and "apiKeySecretRef" in obj["message"]

    client.CoreV1Api(kube.api_client()).create_namespaced_secret(
        namespace, {"metadata": {"name": "litellm-keys"}, "stringData": {"api-key": "sk-test"}}
    )
    wait_for(
        lambda: (_ready(_get(kube, namespace, "support-summary")) or {}).get("status") == "True",
        what="recovery to Ready=True",
    )


def test_missing_configmap_key_is_named(kube, operator, namespace):
    _create_refs(kube, namespace)
    policy = _policy()
    policy["spec"]["qualification"]["dataset"]["configMapRef"]["key"] = "other.jsonl"
    client.CustomObjectsApi(kube.api_client()).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, policy
    )
    ready = wait_for(lambda: _ready(_get(kube, namespace, "support-summary")), what="a Ready condition")
    assert ready["status"] == "False" and ready["reason"] == "ConfigMapKeyNotFound"
    assert "support-summary-traffic" in ready["message"] and "other.jsonl" in ready["message"]


def _httproute_policy(candidate_backend: str) -> dict:
    policy = copy.deepcopy(yaml.safe_load((EXAMPLE.parent / "routepolicy-httproute.yaml").read_text()))
    policy["spec"]["candidates"][0]["backend"] = candidate_backend
    policy["spec"]["qualification"]["dataset"] = {"url": "https://datasets.example.com/code-review.jsonl"}
    return policy


def test_weight_gateway_route_that_does_not_exist_is_named_at_once(kube, operator, namespace):
    client.CustomObjectsApi(kube.api_client()).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _httproute_policy("small-coder-svc")
    )
    ready = wait_for(lambda: _ready(_get(kube, namespace, "code-review")), what="a Ready condition")
    assert ready["status"] == "False" and ready["reason"] == "RouteNotFound"
    assert "HTTPRoute 'code-review-llm' (from spec.gateway.routeRef)" in ready["message"]


@pytest.mark.usefixtures("upstream_crds")
def test_weight_gateway_backend_missing_from_the_route_is_named_at_once(kube, operator, namespace):
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "code-review-llm"},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],
            "rules": [{"backendRefs": [{"name": "large-coder-svc", "port": 8000, "weight": 100}]}],
        },
    }
    custom = client.CustomObjectsApi(kube.api_client())
    custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", route)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _httproute_policy("small-coder-svc"))

    ready = wait_for(lambda: _ready(_get(kube, namespace, "code-review")), what="a Ready condition")
    assert ready["status"] == "False" and ready["reason"] == "BackendNotFound"
    assert (
        "no backendRef 'small-coder-svc' (from spec.candidates[0].backend); it has: large-coder-svc"
        in (ready["message"])
    )

    route["spec"]["rules"][0]["backendRefs"].append({"name": "small-coder-svc", "port": 8000, "weight": 0})
    live = custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", route["metadata"]["name"]
    )
    live["spec"] = route["spec"]
    custom.replace_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", "code-review-llm", live
    )
    wait_for(
        lambda: (_ready(_get(kube, namespace, "code-review")) or {}).get("reason") != "BackendNotFound",
        what="the missing backend to resolve once the route has it",
    )

"""The operator, in-process against a real kube-apiserver with token auth, reconciles RoutePolicies:
Ready with the right observedGeneration, updated on spec changes, and Ready=False naming a missing
Secret or ConfigMap until it appears."""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml
from kubernetes import client

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

"""The LiteLLM ConfigMap adapter against a real kube-apiserver (and kube-controller-manager, which rolls the
Deployment): one guarded write of one ConfigMap key, a checksum annotation that rolls LiteLLM, exact restore."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from assay.api import routepolicy
from assay.gateways import factory, interface, litellm_config, litellm_configmap

pytestmark = pytest.mark.integration

ROUTE = "support-summary"
CONFIG = """\
# LiteLLM proxy config (platform team)
model_list:
  - model_name: gpt-big   # baseline
    litellm_params: {model: openai/gpt-big}
  - model_name: gpt-small
    litellm_params: {model: openai/gpt-small}
router_settings:
  num_retries: 2
  model_group_alias:
    support-summary: gpt-big   # apps call this
    billing: gpt-small
"""
RBAC = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
]  # as docs/gateways.md


def spec(**gateway: Any) -> routepolicy.RoutePolicySpec:
    return routepolicy.RoutePolicySpec.model_validate(
        {
            "promptType": ROUTE,
            "gateway": {
                "kind": "LiteLLMConfigMap",
                "configMapRef": {"name": "litellm-config", "key": "config.yaml"},
                "deploymentRef": {"name": "litellm"},
                **gateway,
            },
            "baseline": {"model": "gpt-big"},
            "candidates": [{"name": "small", "model": "gpt-small"}],
            "qualification": {
                "endpoint": {"url": "http://litellm:4000"},
                "dataset": {"url": "http://data/x.jsonl"},
                "judge": {"model": "judge"},
            },
        }
    )


@pytest.fixture
def api(kube, namespace) -> client.ApiClient:
    api_client = kube.api_client()
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "litellm-config"}, "data": {"config.yaml": CONFIG, "other": "x"}}
    )
    labels = {"app": "litellm"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "litellm"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "litellm", "image": "litellm:1.108.7"}]},
                },
            },
        },
    )
    return api_client


def config_text(api_client: client.ApiClient, namespace: str) -> str:
    return client.CoreV1Api(api_client).read_namespaced_config_map("litellm-config", namespace).data["config.yaml"]


def template_annotation(api_client: client.ApiClient, namespace: str) -> str | None:
    deployment = client.AppsV1Api(api_client).read_namespaced_deployment("litellm", namespace)
    return (deployment.spec.template.metadata.annotations or {}).get(litellm_configmap.CONFIG_CHECKSUM_ANNOTATION)


def replica_set_checksums(
    api_client: client.ApiClient, namespace: str, *, expect: int, timeout: float = 20
) -> set[str]:
    """The checksum annotations of the Deployment's ReplicaSets, once the controller has made `expect` of them."""
    deadline = time.monotonic() + timeout
    while True:
        sets = client.AppsV1Api(api_client).list_namespaced_replica_set(namespace).items
        found = {
            (rs.spec.template.metadata.annotations or {}).get(litellm_configmap.CONFIG_CHECKSUM_ANNOTATION, "")
            for rs in sets
        }
        if len(sets) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_switch_rewrites_one_line_and_rolls_litellm(api, namespace):
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=api)
    assert gateway.restarts_gateway
    before = gateway.read()
    assert before.model == "gpt-big"
    after = gateway.write(factory.target_for(spec(), candidate=spec().candidates[0]), expected=before)
    text = config_text(api, namespace)
    assert after.model == "gpt-small" and litellm_config.read_alias(text, ROUTE) == "gpt-small"
    assert text == CONFIG.replace("support-summary: gpt-big", "support-summary: gpt-small")
    assert template_annotation(api, namespace) == litellm_configmap.config_checksum(text)
    # the Deployment controller rolls a new ReplicaSet for the new config
    assert litellm_configmap.config_checksum(text) in replica_set_checksums(api, namespace, expect=2)


def test_restore_puts_back_the_exact_text(api, namespace):
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=api)
    before = gateway.read()
    gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    restored = gateway.restore(interface.RouteSnapshot.from_state(before.to_state()))
    assert restored.fingerprint == before.fingerprint
    assert config_text(api, namespace) == CONFIG
    assert template_annotation(api, namespace) == litellm_configmap.config_checksum(CONFIG)


def test_write_of_the_current_state_still_completes_an_interrupted_roll(api, namespace):
    # a previous attempt wrote the config and died before patching the Deployment
    client.CoreV1Api(api).patch_namespaced_config_map(
        "litellm-config", namespace, {"data": {"config.yaml": litellm_config.set_alias(CONFIG, ROUTE, "gpt-small")}}
    )
    assert template_annotation(api, namespace) is None
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=api)
    gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=None)
    assert template_annotation(api, namespace) == litellm_configmap.config_checksum(config_text(api, namespace))


def test_hand_edit_of_the_alias_is_detected_and_left_alone(api, namespace):
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=api)
    before = gateway.read()
    edited = CONFIG.replace("support-summary: gpt-big", "support-summary: gpt-small")
    client.CoreV1Api(api).patch_namespaced_config_map("litellm-config", namespace, {"data": {"config.yaml": edited}})
    with pytest.raises(interface.RouteChangedExternally) as raised:
        gateway.write(interface.RouteTarget.to_model("gpt-big"), expected=before)
    assert "litellm-config" in str(raised.value) and raised.value.live.model == "gpt-small"
    assert config_text(api, namespace) == edited
    assert template_annotation(api, namespace) is None


def test_hand_edit_elsewhere_in_the_file_is_kept(api, namespace):
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=api)
    before = gateway.read()
    edited = CONFIG.replace("num_retries: 2", "num_retries: 5")
    client.CoreV1Api(api).patch_namespaced_config_map("litellm-config", namespace, {"data": {"config.yaml": edited}})
    gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    assert config_text(api, namespace) == edited.replace("support-summary: gpt-big", "support-summary: gpt-small")


def test_concurrent_write_between_read_and_patch_is_a_conflict(api, namespace):
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=api)
    assert isinstance(gateway, litellm_configmap.LiteLLMConfigMapGateway)
    core = gateway._core
    read = core.read_namespaced_config_map

    def read_then_someone_writes(*args: Any, **kwargs: Any) -> Any:
        seen = read(*args, **kwargs)
        client.CoreV1Api(api).patch_namespaced_config_map("litellm-config", namespace, {"data": {"other": "changed"}})
        return seen

    core.read_namespaced_config_map = read_then_someone_writes  # type: ignore[method-assign]
    with pytest.raises(interface.GatewayConflict) as raised:
        gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=None)
    assert raised.value.retryable and raised.value.reason == "GatewayConflict"
    assert config_text(api, namespace) == CONFIG


def test_missing_objects_and_groups_are_named(api, namespace):
    with pytest.raises(interface.RouteNotFound, match=r"no key 'config\.yml'"):
        factory.for_policy(
            spec(configMapRef={"name": "litellm-config", "key": "config.yml"}), namespace=namespace, api_client=api
        ).read()
    with pytest.raises(interface.RouteNotFound, match=r"ConfigMap .*/absent"):
        factory.for_policy(
            spec(configMapRef={"name": "absent", "key": "config.yaml"}), namespace=namespace, api_client=api
        ).read()
    with pytest.raises(interface.ModelGroupNotFound, match="gpt-tiny"):
        factory.for_policy(spec(), namespace=namespace, api_client=api).write(
            interface.RouteTarget.to_model("gpt-tiny"), expected=None
        )
    with pytest.raises(interface.RouteNotFound, match=r"gateway\.deploymentRef"):
        factory.for_policy(spec(deploymentRef={"name": "absent"}), namespace=namespace, api_client=api).write(
            interface.RouteTarget.to_model("gpt-small"), expected=None
        )


def as_service_account(kube, namespace: str, rules: list[dict[str, Any]]) -> client.ApiClient:
    """An API client acting as a ServiceAccount bound to exactly `rules` (impersonated by the admin client)."""
    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "assay-gateway"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "assay-gateway"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "assay-gateway"},
            "subjects": [{"kind": "ServiceAccount", "name": "assay", "namespace": namespace}],
        },
    )
    api_client = kube.api_client()
    api_client.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:assay")
    return api_client


def test_documented_rbac_is_enough_and_less_is_reported(kube, api, namespace):
    least = as_service_account(kube, namespace, RBAC)
    gateway = factory.for_policy(spec(), namespace=namespace, api_client=least)
    before = gateway.read()
    gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    gateway.restore(before)
    assert config_text(api, namespace) == CONFIG
    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    rbac.patch_namespaced_role("assay-gateway", namespace, {"rules": RBAC[:1]})
    with pytest.raises(interface.GatewayForbidden, match="'get' on deployments"):
        gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=None)

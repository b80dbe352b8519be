"""The weight-based adapters against a real kube-apiserver with the upstream CRDs (Envoy AI Gateway v1.0.0's
AIGatewayRoute, Gateway API v1.6.3's HTTPRoute, fetched by hack/upstream-crds.sh from their Go modules):
canary steps change only the owned weights, in one guarded patch; restore puts the rule back exactly."""

from __future__ import annotations

import copy
import pathlib
import subprocess
from typing import Any

import pytest
from kubernetes import client

import realparts
from assay.api import routepolicy
from assay.gateways import envoy_ai_gateway, factory, httproute, interface, weighted_route

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
ROUTE_NAME = "chat"

RESOURCES = {"EnvoyAIGatewayRoute": envoy_ai_gateway.AI_GATEWAY_ROUTE, "HTTPRoute": httproute.HTTP_ROUTE}


def route_body(kind: str, version: str) -> dict[str, Any]:
    """A route whose rule 0 serves the policy (baseline gpt-big, candidate small-backend) plus a shadow backend
    assay does not own, and a rule 1 for another team."""
    resource = RESOURCES[kind]
    if kind == "HTTPRoute":
        refs = [
            {"name": "gpt-big", "port": 8000, "weight": 100},
            {"name": "small-backend", "port": 8000, "weight": 0},
            {"name": "shadow", "port": 8000, "weight": 3},
        ]
        other = [{"name": "other", "port": 8000}]
        parent = {"name": "inference-gateway"}
    else:
        refs = [
            {"name": "gpt-big", "weight": 100, "modelNameOverride": "gpt-4o"},
            {"name": "small-backend", "weight": 0},
            {"name": "shadow", "weight": 3},
        ]
        other = [{"name": "other"}]
        parent = {"name": "envoy-ai-gateway", "kind": "Gateway", "group": "gateway.networking.k8s.io"}
    match = {"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "support-summary"}]}
    return {
        "apiVersion": f"{resource.group}/{version}",
        "kind": resource.kind,
        "metadata": {"name": ROUTE_NAME},
        "spec": {"parentRefs": [parent], "rules": [{"matches": [match], "backendRefs": refs}, {"backendRefs": other}]},
    }


def spec(kind: str, **gateway: Any) -> routepolicy.RoutePolicySpec:
    return routepolicy.RoutePolicySpec.model_validate(
        {
            "promptType": "support-summary",
            "gateway": {"kind": kind, "routeRef": {"name": ROUTE_NAME}, **gateway},
            "baseline": {"model": "gpt-big"},
            "candidates": [{"name": "small", "model": "gpt-small", "backend": "small-backend"}],
            "qualification": {
                "endpoint": {"url": "http://gateway:8080"},
                "dataset": {"url": "http://data/x.jsonl"},
                "judge": {"model": "judge"},
            },
            "promotion": {"strategy": "Canary", "steps": [10, 50, 100]},
        }
    )


@pytest.fixture(scope="module")
def upstream_crds(kube) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "upstream-crds.sh")], capture_output=True, text=True, check=False
    )
    realparts.require(
        "the upstream CRDs (AIGatewayRoute, HTTPRoute)",
        result.returncode == 0,
        f"run hack/upstream-crds.sh (needs Go); it said: {result.stderr.strip()[-500:]}",
    )
    directory = pathlib.Path(result.stdout.strip().splitlines()[-1])
    kube.apply_crds(sorted(directory.glob("*.yaml")))


@pytest.fixture(params=["EnvoyAIGatewayRoute", "HTTPRoute"])
def kind(request: pytest.FixtureRequest, upstream_crds: None) -> str:
    return str(request.param)


@pytest.fixture
def api(kube, namespace, kind) -> client.ApiClient:
    api_client = kube.api_client()
    resource = RESOURCES[kind]
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        resource.group, resource.versions[0], namespace, resource.plural, route_body(kind, resource.versions[0])
    )
    return api_client


def live(api_client: client.ApiClient, namespace: str, kind: str) -> dict[str, Any]:
    resource = RESOURCES[kind]
    obj = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        resource.group, resource.versions[0], namespace, resource.plural, ROUTE_NAME
    )
    assert isinstance(obj, dict)
    return obj


def rule_weights(obj: dict[str, Any], rule: int = 0) -> dict[str, int]:
    return {ref["name"]: ref.get("weight") for ref in obj["spec"]["rules"][rule]["backendRefs"]}


def hand_patch(api_client: client.ApiClient, namespace: str, kind: str, ops: list[dict[str, Any]]) -> None:
    resource = RESOURCES[kind]
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        resource.group,
        resource.versions[0],
        namespace,
        resource.plural,
        ROUTE_NAME,
        ops,
        _content_type="application/json-patch+json",
    )


def test_canary_steps_move_only_the_owned_weights(api, namespace, kind):
    policy = spec(kind)
    gateway = factory.for_policy(policy, namespace=namespace, api_client=api)
    assert gateway.supports_weights and not gateway.restarts_gateway
    original = live(api, namespace, kind)
    previous = gateway.read()
    assert previous.weights == {"gpt-big": 100, "small-backend": 0}
    for percent in policy.promotion.steps:
        previous = gateway.write(
            factory.target_for(policy, candidate=policy.candidates[0], percent=percent), expected=previous
        )
        assert previous.weights == {"gpt-big": 100 - percent, "small-backend": percent}
        assert rule_weights(live(api, namespace, kind)) == {
            "gpt-big": 100 - percent,
            "small-backend": percent,
            "shadow": 3,
        }
    # nothing but the two weights changed: every other field of every ref and rule is as it was
    after = live(api, namespace, kind)
    for ref in after["spec"]["rules"][0]["backendRefs"][:2]:
        ref.pop("weight")
    expected = copy.deepcopy(original)
    for ref in expected["spec"]["rules"][0]["backendRefs"][:2]:
        ref.pop("weight")
    assert after["spec"] == expected["spec"]


def test_restore_puts_back_the_rule_exactly(api, namespace, kind):
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=api)
    original = live(api, namespace, kind)
    before = gateway.read()
    gateway.write(interface.RouteTarget.split({"gpt-big": 0, "small-backend": 100}), expected=before)
    restored = gateway.restore(interface.RouteSnapshot.from_state(before.to_state()))
    assert restored.fingerprint == before.fingerprint
    assert live(api, namespace, kind)["spec"] == original["spec"]


def test_hand_edit_is_detected_and_left_alone(api, namespace, kind):
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=api)
    before = gateway.read()
    hand_patch(api, namespace, kind, [{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 30}])
    with pytest.raises(interface.RouteChangedExternally) as raised:
        gateway.write(interface.RouteTarget.split({"gpt-big": 90, "small-backend": 10}), expected=before)
    assert raised.value.live.weights == {"gpt-big": 100, "small-backend": 30}
    assert rule_weights(live(api, namespace, kind))["small-backend"] == 30


def test_edits_to_backends_assay_does_not_own_are_not_a_hand_edit(api, namespace, kind):
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=api)
    before = gateway.read()
    hand_patch(api, namespace, kind, [{"op": "replace", "path": "/spec/rules/0/backendRefs/2/weight", "value": 9}])
    gateway.write(interface.RouteTarget.split({"gpt-big": 90, "small-backend": 10}), expected=before)
    assert rule_weights(live(api, namespace, kind)) == {"gpt-big": 90, "small-backend": 10, "shadow": 9}


def test_concurrent_write_between_read_and_patch_is_a_conflict(api, namespace, kind):
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=api)
    assert isinstance(gateway, weighted_route.WeightedRouteGateway)
    custom = gateway._custom
    get = custom.get_namespaced_custom_object

    def get_then_someone_writes(*args: Any, **kwargs: Any) -> Any:
        seen = get(*args, **kwargs)
        hand_patch(api, namespace, kind, [{"op": "replace", "path": "/spec/rules/0/backendRefs/2/weight", "value": 4}])
        return seen

    custom.get_namespaced_custom_object = get_then_someone_writes  # type: ignore[method-assign]
    with pytest.raises(interface.GatewayConflict) as raised:
        gateway.write(interface.RouteTarget.split({"gpt-big": 90, "small-backend": 10}), expected=None)
    assert raised.value.retryable
    assert rule_weights(live(api, namespace, kind)) == {"gpt-big": 100, "small-backend": 0, "shadow": 4}


def test_owned_backend_added_after_the_snapshot_gets_no_traffic_on_restore(api, namespace, kind):
    hand_patch(api, namespace, kind, [{"op": "remove", "path": "/spec/rules/0/backendRefs/1"}])
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=api)
    before = gateway.read()
    assert before.weights == {"gpt-big": 100}
    port = {"port": 8000} if kind == "HTTPRoute" else {}
    hand_patch(
        api,
        namespace,
        kind,
        [{"op": "add", "path": "/spec/rules/0/backendRefs/-", "value": {"name": "small-backend", "weight": 0, **port}}],
    )
    gateway.write(interface.RouteTarget.split({"gpt-big": 0, "small-backend": 100}), expected=None)
    gateway.restore(before)
    assert rule_weights(live(api, namespace, kind)) == {"gpt-big": 100, "shadow": 3, "small-backend": 0}


def test_missing_backend_rule_and_route_are_named(api, namespace, kind):
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=api)
    hand_patch(api, namespace, kind, [{"op": "remove", "path": "/spec/rules/0/backendRefs/1"}])
    with pytest.raises(interface.BackendNotFound, match="'small-backend'"):
        gateway.write(interface.RouteTarget.split({"gpt-big": 90, "small-backend": 10}), expected=None)
    with pytest.raises(interface.RouteNotFound, match="ruleIndex 5"):
        factory.for_policy(spec(kind, ruleIndex=5), namespace=namespace, api_client=api).read()
    with pytest.raises(interface.RouteNotFound, match="absent"):
        factory.for_policy(spec(kind, routeRef={"name": "absent"}), namespace=namespace, api_client=api).read()


def test_ai_gateway_route_uses_the_served_v1beta1_and_reads_v1alpha1_objects(kube, namespace, upstream_crds):
    api_client = kube.api_client()
    resource = envoy_ai_gateway.AI_GATEWAY_ROUTE
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        resource.group, "v1alpha1", namespace, resource.plural, route_body("EnvoyAIGatewayRoute", "v1alpha1")
    )
    gateway = factory.for_policy(spec("EnvoyAIGatewayRoute"), namespace=namespace, api_client=api_client)
    assert isinstance(gateway, weighted_route.WeightedRouteGateway)
    assert gateway.read().weights == {"gpt-big": 100, "small-backend": 0}
    assert gateway._served_version() == "v1beta1"


def test_documented_rbac_is_enough(kube, api, namespace, kind):
    resource = RESOURCES[kind]
    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    rules = [{"apiGroups": [resource.group], "resources": [resource.plural], "verbs": ["get", "patch"]}]
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "assay-gateway"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "assay-gateway"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "assay-gateway"},
            "subjects": [{"kind": "ServiceAccount", "name": "assay", "namespace": namespace}],
        },
    )
    least = kube.api_client()
    least.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:assay")
    gateway = factory.for_policy(spec(kind), namespace=namespace, api_client=least)
    before = gateway.read()
    gateway.write(interface.RouteTarget.split({"gpt-big": 50, "small-backend": 50}), expected=before)
    gateway.restore(before)
    assert rule_weights(live(api, namespace, kind))["gpt-big"] == 100

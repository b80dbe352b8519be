"""Choosing the adapter and turning promotion intents into targets."""

from __future__ import annotations

import pytest

from assay.api import routepolicy
from assay.gateways import envoy_ai_gateway, factory, interface, litellm_admin, litellm_configmap

GATEWAYS = {
    "LiteLLMConfigMap": {
        "configMapRef": {"name": "litellm", "key": "config.yaml"},
        "deploymentRef": {"name": "litellm"},
    },
    "LiteLLMAdminAPI": {"url": "http://litellm:4000", "masterKeySecretRef": {"name": "litellm", "key": "master"}},
    "EnvoyAIGatewayRoute": {"routeRef": {"name": "chat"}, "ruleIndex": 1},
    "HTTPRoute": {"routeRef": {"name": "chat"}},
}


def policy(kind: str, **gateway: object) -> routepolicy.RoutePolicySpec:
    return routepolicy.RoutePolicySpec.model_validate(
        {
            "promptType": "support-summary",
            "gateway": {"kind": kind, **GATEWAYS[kind], **gateway},
            "baseline": {"model": "gpt-big"},
            "candidates": [
                {"name": "small", "model": "gpt-small", "backend": "small-backend"},
                {"name": "mini", "model": "gpt-mini"},
            ],
            "qualification": {
                "endpoint": {"url": "http://litellm:4000"},
                "dataset": {"url": "http://data/prompts.jsonl"},
                "judge": {"model": "judge"},
            },
        }
    )


def test_route_defaults_to_the_prompt_type():
    assert factory.route_name(policy("LiteLLMConfigMap")) == "support-summary"
    assert factory.route_name(policy("LiteLLMConfigMap", route="support")) == "support"


def test_backends_default_to_model_names():
    assert factory.owned_backends(policy("HTTPRoute")) == ["gpt-big", "small-backend", "gpt-mini"]


def test_weighted_gateways_get_weight_splits_for_canary_steps():
    spec = policy("EnvoyAIGatewayRoute")
    small = spec.candidates[0]
    assert factory.target_for(spec, candidate=small, percent=10).weights == {"gpt-big": 90, "small-backend": 10}
    assert factory.target_for(spec, candidate=small).weights == {"gpt-big": 0, "small-backend": 100}
    assert factory.target_for(spec, candidate=None).weights == {"gpt-big": 100}


@pytest.mark.parametrize("kind", ["LiteLLMConfigMap", "LiteLLMAdminAPI"])
def test_litellm_gateways_switch_the_alias_all_at_once(kind):
    spec = policy(kind)
    small = spec.candidates[0]
    assert factory.target_for(spec, candidate=small).model_group == "gpt-small"
    assert factory.target_for(spec, candidate=small, percent=0).model_group == "gpt-big"
    assert factory.target_for(spec, candidate=None).model_group == "gpt-big"
    with pytest.raises(interface.CanaryNotSupported, match="10%"):
        factory.target_for(spec, candidate=small, percent=10)


def test_factory_picks_one_adapter_per_kind():
    api_client = object()  # adapters do no I/O until used
    made = {kind: factory.for_policy(policy(kind), namespace="llm", api_client=api_client) for kind in GATEWAYS}  # type: ignore[arg-type]
    assert isinstance(made["LiteLLMConfigMap"], litellm_configmap.LiteLLMConfigMapGateway)
    assert made["LiteLLMConfigMap"].restarts_gateway and not made["LiteLLMConfigMap"].supports_weights
    assert isinstance(made["LiteLLMAdminAPI"], litellm_admin.LiteLLMAdminGateway)
    assert not made["LiteLLMAdminAPI"].restarts_gateway
    assert made["EnvoyAIGatewayRoute"].kind == envoy_ai_gateway.KIND and made["EnvoyAIGatewayRoute"].supports_weights
    assert (
        made["HTTPRoute"].describe()
        == "HTTPRoute: weights of gpt-big, small-backend, gpt-mini in HTTPRoute llm/chat rules[0].backendRefs"
    )
    assert "rules[1]" in made["EnvoyAIGatewayRoute"].describe()
    assert {gateway.kind for gateway in made.values()} == set(GATEWAYS)

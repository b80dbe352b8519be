"""References to nothing: a weight gateway's baseline or candidate backend missing from the route's rule is named
in Ready (reason and field) as soon as the policy is reconciled; admission cannot see the route object."""

from __future__ import annotations

from typing import Any

import pytest

from assay.api import routepolicy
from assay.controllers import references

GATEWAYS: dict[str, dict[str, Any]] = {
    "LiteLLMConfigMap": {"kind": "LiteLLMConfigMap", "configMapRef": {"name": "c", "key": "config.yaml"}},
    "LiteLLMAdminAPI": {
        "kind": "LiteLLMAdminAPI",
        "url": "http://litellm:4000",
        "masterKeySecretRef": {"name": "litellm-master", "key": "key"},
    },
}


def _spec(kind: str = "HTTPRoute", **candidate: Any) -> routepolicy.RoutePolicySpec:
    return routepolicy.RoutePolicySpec.model_validate(
        {
            "promptType": "chat",
            "gateway": GATEWAYS.get(kind, {"kind": kind, "routeRef": {"name": "chat"}, "ruleIndex": 1}),
            "baseline": {"model": "big", "backend": "big-svc"},
            "candidates": [{"name": "small", "model": "small", **candidate}],
            "qualification": {
                "endpoint": {"url": "http://gateway:8080"},
                "dataset": {"url": "http://data/x.jsonl"},
                "judge": {"model": "judge"},
            },
        }
    )


def test_backends_of_a_weight_gateway_name_the_field_they_come_from():
    assert references.backends_of_policy(_spec(backend="small-svc")) == [
        references.BackendRef("big-svc", "spec.baseline.backend"),
        references.BackendRef("small-svc", "spec.candidates[0].backend"),
    ]
    # Without a backend the model name is the backendRef name, and the model field is the one to blame.
    assert references.backends_of_policy(_spec())[1] == references.BackendRef("small", "spec.candidates[0].model")
    assert references.backends_of_policy(_spec("LiteLLMConfigMap")) == []


@pytest.mark.parametrize("kind", ["HTTPRoute", "EnvoyAIGatewayRoute"])
def test_a_backend_missing_from_the_rule_is_named_with_what_the_rule_has(kind):
    problem = references.check_backends(_spec(kind, backend="small-svc"), backends_in_route=lambda: ["big-svc", "x"])
    assert problem is not None and problem.reason == "BackendNotFound"
    assert problem.message.startswith(f"{kind} 'chat' rules[1] has no backendRef 'small-svc'")
    assert "(from spec.candidates[0].backend); it has: big-svc, x." in problem.message


def test_a_missing_route_object_or_rule_is_named():
    problem = references.check_backends(_spec(backend="small-svc"), backends_in_route=lambda: None)
    assert problem == references.Problem(
        "RouteNotFound",
        "HTTPRoute 'chat' (from spec.gateway.routeRef) does not exist or has no rule 1 (spec.gateway.ruleIndex)",
    )


def test_all_backends_present_or_no_weight_gateway_is_no_problem():
    assert references.check_backends(_spec(backend="s"), backends_in_route=lambda: ["s", "big-svc"]) is None

    def never() -> list[str]:
        raise AssertionError("a LiteLLM gateway has no route object to read")

    assert references.check_backends(_spec("LiteLLMConfigMap"), backends_in_route=never) is None


def test_an_image_outside_the_allow_list_is_named_and_no_job_is_made_for_it():
    allowed = ["ghcr.io/assay-dev/assay:1.2.3", "registry.corp/assay:"]
    assert references.check_image("registry.corp/assay:2.0", allowed=allowed) is None
    problem = references.check_image("evil.example/x:1", allowed=allowed)
    assert problem is not None and problem.reason == "ImageNotAllowed"
    assert problem.message.startswith("spec.execution.image 'evil.example/x:1' is not an allowed evaluator image")
    assert "evaluator.allowedImages" in problem.message


@pytest.mark.parametrize("kind", ["HTTPRoute", "EnvoyAIGatewayRoute", "LiteLLMAdminAPI"])
def test_a_candidate_prompt_the_gateway_adapter_cannot_serve_is_refused_naming_the_field(kind):
    problem = references.check_servable(_spec(kind, systemPrompt="Answer in one sentence."))
    assert problem is not None and problem.reason == "PromptNotServable"
    assert "spec.candidates[0].systemPrompt" in problem.message and kind in problem.message
    assert "LiteLLMConfigMap" in problem.message  # where it can be served
    assert references.check_servable(_spec(kind)) is None


def test_a_candidate_prompt_is_servable_on_litellm_configmap_and_a_baseline_prompt_nowhere():
    assert references.check_servable(_spec("LiteLLMConfigMap", systemPrompt="Answer in one sentence.")) is None
    for kind in ("LiteLLMConfigMap", "HTTPRoute"):
        spec = _spec(kind).model_copy(
            update={"baseline": _spec(kind).baseline.model_copy(update={"system_prompt": "Be brief."})}
        )
        problem = references.check_servable(spec)
        assert problem is not None and problem.reason == "PromptNotServable"
        assert problem.message.startswith("spec.baseline.systemPrompt is set")

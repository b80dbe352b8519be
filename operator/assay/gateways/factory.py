"""Pick the adapter a RoutePolicy's spec.gateway names, and turn promotion intents into RouteTargets."""

from __future__ import annotations

import functools

from kubernetes import client

from assay.api import evaluation, routepolicy
from assay.gateways import (
    envoy_ai_gateway,
    httproute,
    interface,
    kube,
    litellm_admin,
    litellm_configmap,
    weighted_route,
)
from assay.promotion import machine

WEIGHTED_KINDS = frozenset({envoy_ai_gateway.KIND, httproute.KIND})


route_name = machine.route_name
backend_name = machine.backend_name
owned_backends = machine.owned_backends


def target_for(
    spec: routepolicy.RoutePolicySpec, *, candidate: evaluation.Candidate | None, percent: int = 100
) -> interface.RouteTarget:
    """Where the route goes to give `candidate` `percent`% of the traffic and the baseline the rest
    (candidate None: everything to the baseline).

    LiteLLM kinds switch the alias to one model group, so only 0 and 100 are possible there; other percents
    raise CanaryNotSupported. Weight-based kinds get {baseline: 100 - percent, candidate: percent}.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within [0, 100], got {percent}")
    if spec.gateway.kind in WEIGHTED_KINDS:
        baseline = backend_name(spec.baseline)
        if candidate is None:
            return interface.RouteTarget.split({baseline: 100})
        if backend_name(candidate) == baseline:
            raise interface.InvalidGatewayConfig(
                f"candidate {candidate.name!r} uses the baseline's backendRef {baseline!r}: give it its own backend"
            )
        return interface.RouteTarget.split({baseline: 100 - percent, backend_name(candidate): percent})
    if candidate is None or percent == 0:
        return interface.RouteTarget.to_model(spec.baseline.model)
    if percent == 100:
        return interface.RouteTarget.to_model(candidate.model, system_prompt=candidate.system_prompt)
    raise interface.CanaryNotSupported(
        f"{spec.gateway.kind} switches the route's alias all at once; a canary step of {percent}% needs "
        "gateway kind EnvoyAIGatewayRoute or HTTPRoute (or promotion.strategy: Direct)"
    )


def location_key(source: routepolicy.RouteSource, *, namespace: str) -> str:
    """The gateway location a route lives in, as the one route writer serializes them: a LiteLLM proxy (its
    alias map is posted back whole), a ConfigMap, or a route object."""
    gateway = routepolicy.Gateway.model_validate(source.gateway)
    if gateway.kind == litellm_admin.KIND:
        return f"{gateway.kind} {(gateway.url or '').rstrip('/')}"
    if gateway.kind == litellm_configmap.KIND:
        ref = gateway.config_map_ref
        return f"ConfigMap {namespace}/{ref.name if ref else ''}"
    ref_name = gateway.route_ref.name if gateway.route_ref else ""
    return f"{gateway.kind} {namespace}/{ref_name}"


def for_policy(
    spec: routepolicy.RoutePolicySpec,
    *,
    namespace: str,
    api_client: client.ApiClient,
    secrets: interface.SecretReader | None = None,
) -> interface.Gateway:
    """The adapter for the policy's spec.gateway, in the policy's namespace. No I/O happens until it is used."""
    return for_source(machine.source_of(spec), namespace=namespace, api_client=api_client, secrets=secrets)


def for_source(
    source: routepolicy.RouteSource,
    *,
    namespace: str,
    api_client: client.ApiClient,
    secrets: interface.SecretReader | None = None,
) -> interface.Gateway:
    """The adapter for a recorded route source (status.routeSource, or the spec's). No I/O until it is used."""
    gateway = routepolicy.Gateway.model_validate(source.gateway)
    route = source.route
    if gateway.kind == litellm_configmap.KIND:
        if gateway.config_map_ref is None:
            raise interface.InvalidGatewayConfig("spec.gateway.configMapRef is required for kind LiteLLMConfigMap")
        return litellm_configmap.LiteLLMConfigMapGateway(
            api_client=api_client,
            namespace=namespace,
            config_map=gateway.config_map_ref.name,
            key=gateway.config_map_ref.key,
            route=route,
            deployment=gateway.deployment_ref.name if gateway.deployment_ref else None,
        )
    if gateway.kind == litellm_admin.KIND:
        if gateway.url is None or gateway.master_key_secret_ref is None:
            raise interface.InvalidGatewayConfig(
                "spec.gateway.url and spec.gateway.masterKeySecretRef are required for kind LiteLLMAdminAPI"
            )
        ref = gateway.master_key_secret_ref
        reader = secrets or kube.secret_reader(api_client)
        return litellm_admin.LiteLLMAdminGateway(
            url=gateway.url,
            route=route,
            master_key=functools.cache(lambda: reader(namespace=namespace, name=ref.name, key=ref.key)),
            key_source=f"the key {ref.key!r} of Secret {namespace}/{ref.name} (gateway.masterKeySecretRef)",
        )
    if gateway.kind in WEIGHTED_KINDS:
        if gateway.route_ref is None:
            raise interface.InvalidGatewayConfig(f"spec.gateway.routeRef is required for kind {gateway.kind}")
        resource = envoy_ai_gateway.AI_GATEWAY_ROUTE if gateway.kind == envoy_ai_gateway.KIND else httproute.HTTP_ROUTE
        return weighted_route.WeightedRouteGateway(
            kind=gateway.kind,
            resource=resource,
            api_client=api_client,
            namespace=namespace,
            name=gateway.route_ref.name,
            rule_index=gateway.rule_index,
            owned_backends=source.owned_backends,
        )
    raise interface.InvalidGatewayConfig(f"spec.gateway.kind {gateway.kind!r} has no adapter")

"""Envoy AI Gateway `AIGatewayRoute`: the rule keeps the baseline's and the candidates' backendRefs (AIServiceBackends)
and assay changes only their weights, in one resourceVersion-guarded patch that Envoy applies live.

Envoy AI Gateway v1.0 serves aigateway.envoyproxy.io v1beta1 (storage) and v1alpha1 (deprecated), with the same
rules[].backendRefs[].weight field in both; assay uses v1beta1 and falls back to v1alpha1 on older installs.
Applications select the route with the model name they send (the x-ai-eg-model header match of the rule).
"""

from __future__ import annotations

from assay.gateways import weighted_route

KIND = "EnvoyAIGatewayRoute"
AI_GATEWAY_ROUTE = weighted_route.RouteResource(
    group="aigateway.envoyproxy.io", versions=("v1beta1", "v1alpha1"), plural="aigatewayroutes", kind="AIGatewayRoute"
)

"""Gateway API `HTTPRoute` (gateway.networking.k8s.io/v1): the rule keeps the baseline's and the candidates'
backendRefs (Services, or InferencePools when moving traffic pool to pool) and assay changes only their
weights, in one resourceVersion-guarded patch that the Gateway implementation applies live.
"""

from __future__ import annotations

from assay.gateways import weighted_route

KIND = "HTTPRoute"
HTTP_ROUTE = weighted_route.RouteResource(
    group="gateway.networking.k8s.io", versions=("v1",), plural="httproutes", kind="HTTPRoute"
)

"""Gateway adapters: one file per gateway behind one small interface, as Flagger's routers.

    gateway = gateways.for_policy(spec, namespace=ns, api_client=api)
    before = gateway.read()                                   # snapshot -> status.lastKnownGood
    after = gateway.write(gateways.target_for(spec, candidate=c), expected=before)
    gateway.restore(before)                                   # rollback: one write

Adapters: litellm_configmap (config.yaml in a ConfigMap, restarts LiteLLM), litellm_admin (live, through the
LiteLLM admin API), envoy_ai_gateway (AIGatewayRoute weights), httproute (Gateway API HTTPRoute weights).
Pure rewriting lives in litellm_config and weights. Every error is a GatewayError with a `reason` and
`retryable`.
"""

from assay.gateways.factory import backend_name, for_policy, owned_backends, route_name, target_for
from assay.gateways.interface import (
    BackendNotFound,
    CanaryNotSupported,
    Gateway,
    GatewayConflict,
    GatewayError,
    GatewayForbidden,
    GatewayRejected,
    GatewayUnreachable,
    InvalidGatewayConfig,
    ModelGroupNotFound,
    RouteChangedExternally,
    RouteNotFound,
    RouteSnapshot,
    RouteTarget,
    SecretNotFound,
    SecretReader,
    SnapshotMismatch,
    WriteNotApplied,
    fingerprint,
)

__all__ = [
    "BackendNotFound",
    "CanaryNotSupported",
    "Gateway",
    "GatewayConflict",
    "GatewayError",
    "GatewayForbidden",
    "GatewayRejected",
    "GatewayUnreachable",
    "InvalidGatewayConfig",
    "ModelGroupNotFound",
    "RouteChangedExternally",
    "RouteNotFound",
    "RouteSnapshot",
    "RouteTarget",
    "SecretNotFound",
    "SecretReader",
    "SnapshotMismatch",
    "WriteNotApplied",
    "backend_name",
    "fingerprint",
    "for_policy",
    "owned_backends",
    "route_name",
    "target_for",
]

"""A route object whose rule splits traffic over backendRefs by weight (Gateway API HTTPRoute, Envoy AI Gateway
AIGatewayRoute): the shared machinery of both adapters.

The policy owns the weights of its baseline's and candidates' backendRefs in one rule (spec.gateway.ruleIndex)
and nothing else. A switch or canary step is one JSON patch of that rule's backendRefs, guarded by the
object's resourceVersion; the gateway applies it live (no restart). RBAC: get+patch on the route resource.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from kubernetes import client

from assay.gateways import interface, kube, weights


@dataclasses.dataclass(frozen=True)
class RouteResource:
    """A route API: its group, the versions assay can use (preferred first), plural and kind."""

    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str


class WeightedRouteGateway:
    """The owned backendRefs' weights of one rule of one route object."""

    restarts_gateway = False
    supports_weights = True

    def __init__(
        self,
        *,
        kind: str,
        resource: RouteResource,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        rule_index: int,
        owned_backends: Sequence[str],
        version: str | None = None,
    ) -> None:
        self.kind = kind
        self._resource = resource
        self._api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._namespace = namespace
        self._name = name
        self._rule_index = rule_index
        self._owned = list(dict.fromkeys(owned_backends))
        self._version = (
            version if version is not None else (resource.versions[0] if len(resource.versions) == 1 else None)
        )
        self._object = f"{resource.kind} {namespace}/{name}"
        self._field = f"rules[{rule_index}].backendRefs"
        self.location = f"{self._object} {self._field}"

    def backend_names(self) -> list[str] | None:
        """The backendRef names of the owned rule, in order; None when the route object (or its API, or the rule)
        does not exist. Other errors (403, the apiserver down) are raised: they say nothing about the spec."""
        try:
            return [str(ref.get("name")) for ref in self._refs(self._get())]
        except interface.RouteNotFound:
            return None

    def describe(self) -> str:
        return f"{self.kind}: weights of {', '.join(self._owned)} in {self.location}"

    def read(self) -> interface.RouteSnapshot:
        return self._snapshot(self._get())

    def write(
        self, target: interface.RouteTarget, *, expected: interface.RouteSnapshot | None
    ) -> interface.RouteSnapshot:
        if target.weights is None:
            raise ValueError(f"{self.kind} routes switch by weights; got {target.describe()}")
        foreign = [name for name in target.weights if name not in self._owned]
        if foreign:
            raise ValueError(f"{self.describe()}: backends {foreign} are not the policy's baseline or candidates")
        obj = self._get()
        live = self._snapshot(obj)
        interface.check_expected(live, expected)
        return self._apply(obj, dict(target.weights))

    def restore(self, snapshot: interface.RouteSnapshot) -> interface.RouteSnapshot:
        interface.check_same_route(self.kind, self.location, snapshot)
        recorded = snapshot.entries.get("weights")
        if not isinstance(recorded, dict):
            raise interface.SnapshotMismatch(f"snapshot of {self.location} has no weights to restore")
        obj = self._get()
        present = weights.backend_weights(self._refs(obj), self._owned, where=self.location)
        # An owned backend added to the rule after the snapshot carried no traffic then: weight 0 is the
        # same traffic split without deleting anyone's backendRef.
        wanted: dict[str, int | None] = {name: 0 for name in present if name not in recorded}
        wanted.update({str(name): None if weight is None else int(weight) for name, weight in recorded.items()})
        return self._apply(obj, wanted)

    def _apply(self, obj: dict[str, Any], wanted: dict[str, int | None]) -> interface.RouteSnapshot:
        refs = self._refs(obj)
        new_refs = weights.set_weights(refs, wanted, where=self.location)
        if new_refs == refs:
            return self._snapshot(obj)
        path = kube.pointer("spec", "rules", self._rule_index, "backendRefs")
        ops = kube.guarded(
            obj.get("metadata", {}).get("resourceVersion"), [{"op": "replace", "path": path, "value": new_refs}]
        )
        with kube.translated(self._object, verb="patch", resource=self._resource.plural):
            updated = self._custom.patch_namespaced_custom_object(
                self._resource.group,
                self._served_version(),
                self._namespace,
                self._resource.plural,
                self._name,
                ops,
                _content_type=kube.JSON_PATCH,
                _request_timeout=kube.REQUEST_TIMEOUT,
            )
        assert isinstance(updated, dict)
        return self._snapshot(updated)

    def _served_version(self) -> str:
        """The first of the resource's versions the cluster serves (asked once per adapter)."""
        if self._version is not None:
            return self._version
        with kube.translated(f"API group {self._resource.group}", verb="get", resource="discovery (/apis)"):
            groups = client.ApisApi(self._api_client).get_api_versions(_request_timeout=kube.REQUEST_TIMEOUT)
        served = {v.version for g in groups.groups or [] if g.name == self._resource.group for v in g.versions or []}
        for version in self._resource.versions:
            if version in served:
                self._version = version
                return version
        raise interface.RouteNotFound(
            f"the cluster serves no {self._resource.group} version assay supports "
            f"({', '.join(self._resource.versions)}; served: {', '.join(sorted(served)) or 'none'}): "
            f"install the {self._resource.kind} CRD"
        )

    def _get(self) -> dict[str, Any]:
        version = self._served_version()
        with kube.translated(f"{self._object} (gateway.routeRef)", verb="get", resource=self._resource.plural):
            obj = self._custom.get_namespaced_custom_object(
                self._resource.group,
                version,
                self._namespace,
                self._resource.plural,
                self._name,
                _request_timeout=kube.REQUEST_TIMEOUT,
            )
        assert isinstance(obj, dict)
        return obj

    def _refs(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        rules = (obj.get("spec") or {}).get("rules") or []
        if self._rule_index >= len(rules):
            raise interface.RouteNotFound(
                f"{self._object} has {len(rules)} rule(s); gateway.ruleIndex {self._rule_index} is out of range"
            )
        refs = rules[self._rule_index].get("backendRefs") or []
        return [dict(ref) for ref in refs]

    def _snapshot(self, obj: dict[str, Any]) -> interface.RouteSnapshot:
        exact = weights.backend_weights(self._refs(obj), self._owned, where=self.location)
        return interface.RouteSnapshot(
            kind=self.kind,
            location=self.location,
            entries={"weights": exact},
            weights=weights.effective(exact),
            version=obj.get("metadata", {}).get("resourceVersion"),
        )

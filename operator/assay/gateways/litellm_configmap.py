"""LiteLLM configured from a ConfigMap: switch `router_settings.model_group_alias[<route>]` in config.yaml,
then roll the LiteLLM Deployment so the proxy loads it (the slow path: LiteLLM without a database has no
reload endpoint, so a switch takes effect when the new pods are ready). A candidate qualified with a system
prompt is served through its prompt arm (litellm_config.define_arm): a model_list group applying that prompt.

Touches: one key of one ConfigMap (a resourceVersion-guarded JSON patch of that key only) and one pod
template annotation, `assay.dev/config-checksum`, on the Deployment (a strategic merge patch: changing it
makes the Deployment controller roll the pods). RBAC: get+patch on configmaps and deployments.
"""

from __future__ import annotations

import hashlib

from kubernetes import client

from assay.gateways import interface, kube, litellm_config

KIND = "LiteLLMConfigMap"
CONFIG_CHECKSUM_ANNOTATION = "assay.dev/config-checksum"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def config_checksum(text: str) -> str:
    """The pod template annotation value for a config text: it changes exactly when the text changes."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resource_version(obj: client.V1ConfigMap) -> str:
    if obj.metadata is None or not obj.metadata.resource_version:
        raise interface.GatewayError("the apiserver returned a ConfigMap without metadata.resourceVersion")
    return str(obj.metadata.resource_version)


class LiteLLMConfigMapGateway:
    """The alias of one route in LiteLLM's config.yaml, held in a ConfigMap key."""

    kind = KIND
    restarts_gateway = True
    supports_weights = False

    def __init__(
        self,
        *,
        api_client: client.ApiClient,
        namespace: str,
        config_map: str,
        key: str,
        route: str,
        deployment: str | None = None,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._namespace = namespace
        self._config_map = config_map
        self._key = key
        self._route = route
        self._deployment = deployment
        self._object = f"ConfigMap {namespace}/{config_map}"
        self.location = f"{self._object} key {key}: {litellm_config.ALIAS_FIELD}.{route}"

    def describe(self) -> str:
        rolls = f", rolls Deployment {self._namespace}/{self._deployment}" if self._deployment else ""
        return f"{KIND}: alias {self._route!r} in {self._object} key {self._key}{rolls}"

    def read(self) -> interface.RouteSnapshot:
        text, version = self._read_config()
        return self._snapshot(text, version)

    def write(
        self, target: interface.RouteTarget, *, expected: interface.RouteSnapshot | None
    ) -> interface.RouteSnapshot:
        model_group = litellm_config.target_model_group(target, gateway=self.describe(), applies_prompt=True)
        text, version = self._read_config()
        live = self._snapshot(text, version)
        interface.check_expected(live, expected)
        with interface.about(self.location):
            new_text = litellm_config.set_alias(text, self._route, model_group, system_prompt=target.system_prompt)
        return self._commit(text, new_text, version)

    def restore(self, snapshot: interface.RouteSnapshot) -> interface.RouteSnapshot:
        interface.check_same_route(KIND, self.location, snapshot)
        text, version = self._read_config()
        with interface.about(f"snapshot of {self.location}"):
            raw = snapshot.entries.get("alias")
            entry = None if raw is None else litellm_config.check_entry(self._route, raw)
            new_text = litellm_config.put_alias(text, self._route, entry)
        return self._commit(text, new_text, version)

    def _read_config(self) -> tuple[str, str]:
        what = f"{self._object} (gateway.configMapRef)"
        with kube.translated(what, verb="get", resource="configmaps"):
            config_map = self._core.read_namespaced_config_map(
                self._config_map, self._namespace, _request_timeout=kube.REQUEST_TIMEOUT
            )
        data = config_map.data or {}
        if self._key not in data:
            raise interface.RouteNotFound(
                f"{self._object} has no key {self._key!r} (gateway.configMapRef.key); "
                f"its keys: {', '.join(sorted(data)) or 'none'}"
            )
        return data[self._key], _resource_version(config_map)

    def _snapshot(self, text: str, version: str | None) -> interface.RouteSnapshot:
        with interface.about(self._object):
            entry = litellm_config.read_alias(text, self._route)
        return interface.RouteSnapshot(
            kind=KIND,
            location=self.location,
            entries={"alias": entry},
            model=litellm_config.alias_model(entry),
            version=version,
        )

    def _commit(self, old_text: str, new_text: str, version: str) -> interface.RouteSnapshot:
        """Write the new text (when it differs) guarded by `version`, then make sure LiteLLM runs it."""
        if new_text != old_text:
            ops = kube.guarded(version, [{"op": "replace", "path": kube.pointer("data", self._key), "value": new_text}])
            with kube.translated(self._object, verb="patch", resource="configmaps"):
                updated = self._core.patch_namespaced_config_map(
                    self._config_map,
                    self._namespace,
                    ops,
                    _content_type=kube.JSON_PATCH,
                    _request_timeout=kube.REQUEST_TIMEOUT,
                )
            version = _resource_version(updated)
        # Also when the text was already right: an earlier attempt may have died between the two writes.
        self._roll(new_text)
        return self._snapshot(new_text, version)

    def _roll(self, text: str) -> None:
        if not self._deployment:
            return
        what = f"Deployment {self._namespace}/{self._deployment} (gateway.deploymentRef)"
        checksum = config_checksum(text)
        with kube.translated(what, verb="get", resource="deployments"):
            deployment = self._apps.read_namespaced_deployment(
                self._deployment, self._namespace, _request_timeout=kube.REQUEST_TIMEOUT
            )
        template_metadata = deployment.spec.template.metadata
        annotations = (template_metadata.annotations if template_metadata else None) or {}
        if annotations.get(CONFIG_CHECKSUM_ANNOTATION) == checksum:
            return
        body = {"spec": {"template": {"metadata": {"annotations": {CONFIG_CHECKSUM_ANNOTATION: checksum}}}}}
        with kube.translated(what, verb="patch", resource="deployments"):
            self._apps.patch_namespaced_deployment(
                self._deployment,
                self._namespace,
                body,
                _content_type=STRATEGIC_MERGE_PATCH,
                _request_timeout=kube.REQUEST_TIMEOUT,
            )

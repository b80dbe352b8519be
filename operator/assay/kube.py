"""The one place assay talks to the Kubernetes API from its own code (kopf does its own watching).

Sync client calls: call them from sync kopf handlers (kopf runs those in a thread pool) or through
asyncio.to_thread, never directly inside a coroutine.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, cast

from kubernetes import client, config

from assay import GROUP, VERSION

# Every call assay makes has a timeout: (connect, read) seconds.
REQUEST_TIMEOUT = (5.0, 30.0)
PLURALS = {"RoutePolicy": "routepolicies", "QualificationRun": "qualificationruns"}
_lock = threading.Lock()


CONNECTION_POOL_SIZE = 64


def load_configuration() -> client.Configuration:
    """Credentials from the in-cluster service account, or else the kubeconfig named by KUBECONFIG (read at
    call time: the client library reads it once at import, which is too early for tests and the demo)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    # One shared client serves kopf's worker threads, the route writer's workers and the alert path at once:
    # a pool smaller than that discards connections and pays a TLS handshake per call under load.
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return configuration


@functools.cache
def api_client() -> client.ApiClient:
    """The process-wide ApiClient (thread-safe to share)."""
    with _lock:
        return client.ApiClient(load_configuration())


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def batch() -> client.BatchV1Api:
    return client.BatchV1Api(api_client())


def apps() -> client.AppsV1Api:
    return client.AppsV1Api(api_client())


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def rbac() -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(api_client())


def patch_status(
    kind: str, namespace: str, name: str, status: dict[str, Any], *, resource_version: str | None = None
) -> dict[str, Any]:
    """Merge-patch the status subresource of one of assay's objects. With `resource_version` the patch is a
    precondition: the apiserver answers 409 if the object changed since that version was read."""
    body: dict[str, Any] = {"status": status}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    result = custom().patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURALS[kind], name, body, _request_timeout=REQUEST_TIMEOUT
    )
    return cast(dict[str, Any], result)


def get_object(kind: str, namespace: str, name: str) -> dict[str, Any]:
    result = custom().get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name, _request_timeout=REQUEST_TIMEOUT
    )
    return cast(dict[str, Any], result)


def patch_object(kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    result = custom().patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name, body, _request_timeout=REQUEST_TIMEOUT
    )
    return cast(dict[str, Any], result)


def data_keys(kind: str, namespace: str, name: str) -> set[str] | None:
    """The data keys of a Secret or ConfigMap, or None if it does not exist. Values are not returned."""
    try:
        if kind == "Secret":
            secret = core().read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
            return set(secret.data or {}) | set(secret.string_data or {})
        configmap = core().read_namespaced_config_map(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        return set(configmap.data or {}) | set(configmap.binary_data or {})
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, client.ApiException) and exc.status == 404


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, client.ApiException) and exc.status == 409

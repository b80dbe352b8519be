"""Kubernetes I/O shared by the adapters that edit Kubernetes objects: JSON patches guarded by the object's
resourceVersion (a stale one makes the apiserver answer 409 Conflict, never a silent overwrite), and apiserver
errors turned into GatewayErrors whose messages name the object and the RBAC rule to fix."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes import client

from assay.gateways import interface

REQUEST_TIMEOUT = 10.0  # seconds per apiserver call: a rollback must not hang on a dead connection
JSON_PATCH = "application/json-patch+json"


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) to the given path, escaping '~' and '/' in keys."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def guarded(resource_version: str | None, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON patch `ops` that apply only if the object still has `resource_version` (409 Conflict otherwise)."""
    if not resource_version:
        raise interface.GatewayError("cannot guard a write without the object's resourceVersion: re-read it first")
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}, *ops]


def to_dict(api_client: client.ApiClient, obj: Any) -> dict[str, Any]:
    """A typed client model as the plain JSON dict the apiserver sent (camelCase keys)."""
    data = api_client.sanitize_for_serialization(obj)
    assert isinstance(data, dict)
    return data


@contextlib.contextmanager
def translated(what: str, *, verb: str, resource: str) -> Iterator[None]:
    """Turn apiserver and connection errors raised inside the block into GatewayErrors about `what`.

    `verb` and `resource` name the RBAC rule the call needs (e.g. "patch", "configmaps"), for 403 messages.
    """
    try:
        yield
    except client.ApiException as exc:
        raise from_api_exception(exc, what=what, verb=verb, resource=resource) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise interface.GatewayUnreachable(f"{what}: kube-apiserver did not answer ({exc})") from exc


def _status_message(exc: client.ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return (exc.body or str(exc.reason or "")).strip()[:500]
    return str(body.get("message") or exc.reason or "")[:500] if isinstance(body, dict) else str(body)[:500]


def from_api_exception(exc: client.ApiException, *, what: str, verb: str, resource: str) -> interface.GatewayError:
    status = exc.status
    message = _status_message(exc)
    if status == 404:
        return interface.RouteNotFound(f"{what} not found ({message})")
    if status == 409:
        return interface.GatewayConflict(
            f"{what} was modified between assay's read and its write (resourceVersion conflict); "
            "assay re-reads and retries"
        )
    if status in (401, 403):
        return interface.GatewayForbidden(
            f"{what}: the apiserver refused to {verb} {resource} ({message}); grant the operator's "
            f"ServiceAccount '{verb}' on {resource}"
        )
    if status in (400, 422):
        return interface.GatewayRejected(f"{what}: the apiserver rejected the request: {message}")
    if status is None or status == 429 or status >= 500:
        return interface.GatewayUnreachable(f"{what}: kube-apiserver answered {status}: {message}")
    return interface.GatewayError(f"{what}: kube-apiserver answered {status}: {message}")


def secret_reader(api_client: client.ApiClient) -> interface.SecretReader:
    """A SecretReader that reads Secrets through the apiserver (RBAC: get on secrets)."""
    core = client.CoreV1Api(api_client)

    def read(*, namespace: str, name: str, key: str) -> str:
        what = f"Secret {namespace}/{name}"
        try:
            with translated(what, verb="get", resource="secrets"):
                secret = core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except interface.RouteNotFound as exc:
            raise interface.SecretNotFound(f"{what} not found") from exc
        data = secret.data or {}
        if key not in data:
            raise interface.SecretNotFound(f"{what} has no key {key!r}")
        return base64.b64decode(data[key]).decode().strip()

    return read

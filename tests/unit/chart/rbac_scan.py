"""What assay's code asks the Kubernetes API for, as (apiGroup, resource, verb), read from the source, so the
chart's Roles are checked against the code rather than against a second hand-written list.

- Typed client calls (`core().read_namespaced_secret(...)`) are resolved through the client itself: each API
  method serializes one HTTP method and resource path, which give the verb and the resource.
- Custom-object calls (`get_namespaced_custom_object(group, version, namespace, plural, ...)`) name their
  resource in arguments: a string literal, or one of the `RESOURCE_NAMES` below for the variables the code uses.
- kopf's own calls (`KOPF_VERBS`) on every resource the registry handles: it lists and watches them, patches
  them (finalizers, its annotations) and posts Events; it scans CRDs cluster-wide.
"""

from __future__ import annotations

import ast
import functools
import inspect
import pathlib
import re

from kubernetes import client

import assay
from assay import GROUP
from assay.gateways import envoy_ai_gateway, httproute

PRODUCT = pathlib.Path(assay.__file__).parent
# The operator process, and the evaluator (its Jobs' Role is granted by the operator, which must hold it).
# Not the report/CLI (they run as the user) and not the pure packages.
SCANNED = [
    PRODUCT / "kube.py",
    PRODUCT / "controllers",
    PRODUCT / "gateways",
    PRODUCT / "alerts",
    PRODUCT / "evaluator",
]

Grant = tuple[str, str, str]
_HTTP_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_COLLECTION_VERBS = {"GET": "list", "DELETE": "deletecollection"}
_SERIALIZED = re.compile(r"method='(\w+)',\s*resource_path='([^']+)'")

# Variables naming a custom resource in a custom-object call: what they can hold.
RESOURCE_NAMES: dict[str, list[tuple[str, str]]] = {
    "PLURALS[kind]": [(GROUP, "routepolicies"), (GROUP, "qualificationruns")],
    "self._resource": [
        (envoy_ai_gateway.AI_GATEWAY_ROUTE.group, envoy_ai_gateway.AI_GATEWAY_ROUTE.plural),
        (httproute.HTTP_ROUTE.group, httproute.HTTP_ROUTE.plural),
    ],
}
KOPF_RESOURCES = [(GROUP, "routepolicies"), (GROUP, "qualificationruns")]
KOPF_VERBS = ("list", "watch", "patch")
KOPF_EXTRA: set[Grant] = {("", "events", "create")}
# Cluster-wide, kopf's own: its CRD scan in both modes, and the namespaces it follows in namespaced mode.
KOPF_CRD_SCAN: set[Grant] = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")}
KOPF_NAMESPACE_SCAN: set[Grant] = {("", "namespaces", "list"), ("", "namespaces", "watch")}


@functools.cache
def typed_methods() -> dict[str, dict[str, Grant]]:
    """API method name -> {Api class name: (apiGroup, resource, verb)}, from the client's own serializers. A few
    names exist on two classes (create_namespaced_event on CoreV1Api and EventsV1Api)."""
    found: dict[str, dict[str, Grant]] = {}
    for _, api_class in inspect.getmembers(client, inspect.isclass):
        if not api_class.__module__.startswith("kubernetes.client.api."):
            continue
        for name in vars(api_class):
            serializer = getattr(api_class, f"_{name}_serialize", None)
            if name.startswith("_") or serializer is None or "custom_object" in name:
                continue
            match = _SERIALIZED.search(inspect.getsource(serializer))
            grant = _grant(match.group(1), match.group(2)) if match else None
            if grant is not None:
                found.setdefault(name, {})[api_class.__name__] = grant
    return found


def _grant(method: str, path: str) -> Grant | None:
    """None for discovery and other non-resource paths (every authenticated identity may read those)."""
    parts = path.strip("/").split("/")
    if parts[0] not in ("api", "apis") or len(parts) < 3 or method not in _HTTP_VERBS:
        return None
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:2] == ["namespaces", "{namespace}"] and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return None
    resource = rest[0]
    named = len(rest) > 1
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    verb = _HTTP_VERBS[method] if named else _COLLECTION_VERBS.get(method, _HTTP_VERBS[method])
    return group, resource, verb


# How the code reaches each typed API: assay.kube's helpers (`kube.core()`), or the class itself.
_RECEIVERS = {"core": "CoreV1Api", "batch": "BatchV1Api", "apps": "AppsV1Api", "rbac": "RbacAuthorizationV1Api"}


def _typed_grant(by_class: dict[str, Grant], call: ast.Call, source: str) -> Grant:
    if len(set(by_class.values())) == 1:
        return next(iter(by_class.values()))
    receiver = ast.get_source_segment(source, call.func.value) or ""  # type: ignore[attr-defined]
    for helper, api_class in _RECEIVERS.items():
        if f"{helper}()" in receiver or api_class in receiver:
            return by_class[api_class]
    raise AssertionError(f"{call.func.attr} on {receiver!r} exists on {sorted(by_class)}: say which in _RECEIVERS")  # type: ignore[attr-defined]


def _custom_targets(call: ast.Call, source: str) -> list[tuple[str, str]]:
    namespaced = "_namespaced_" in call.func.attr  # type: ignore[attr-defined]
    args = call.args
    plural = args[3] if namespaced else args[2]
    if isinstance(plural, ast.Constant):
        return [(GROUP, str(plural.value))]
    text = ast.get_source_segment(source, plural) or ""
    for variable, targets in RESOURCE_NAMES.items():
        if text == variable or text.startswith(f"{variable}."):
            return targets
    raise AssertionError(f"custom-object call on {text!r}: add what it can name to rbac_scan.RESOURCE_NAMES")


def _custom_verb(name: str) -> tuple[str, str]:
    verb = {"get": "get", "list": "list", "create": "create", "patch": "patch", "replace": "update", "delete": "delete"}
    head, _, _ = name.partition("_")
    return verb[head], "/status" if name.endswith("_status") else ""


def scan(paths: list[pathlib.Path] = SCANNED, *, kopf: bool = True) -> dict[Grant, list[str]]:
    """Every grant the code under `paths` needs, with where it is called (`file:line method`), and kopf's when the
    code is the operator's."""
    methods = typed_methods()
    needed: dict[Grant, list[str]] = {}
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    for path in files:
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, where = node.func.attr, f"{path.relative_to(PRODUCT)}:{node.lineno} {node.func.attr}"
            if name.endswith("_custom_object") or name.endswith("_custom_object_status"):
                verb, sub = _custom_verb(name)
                for group, plural in _custom_targets(node, source):
                    needed.setdefault((group, plural + sub, verb), []).append(where)
            elif name in methods:
                needed.setdefault(_typed_grant(methods[name], node, source), []).append(where)
    if not kopf:
        return needed
    for group, plural in KOPF_RESOURCES:
        for verb in KOPF_VERBS:
            needed.setdefault((group, plural, verb), []).append("kopf")
    for grant in KOPF_EXTRA:
        needed.setdefault(grant, []).append("kopf")
    return needed

"""The container's environment and command, as the kubelet builds them from a pod (a dict as the API serves
it, camelCase): `env`, `$(VAR)` expansion, secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef, envFrom
with prefix. Pure but for `ApiConfigSource`, which reads Secrets and ConfigMaps from the API server."""

from __future__ import annotations

import base64
import fractions
import math
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kubernetes import client

from assaylab.executor import errors, pod_run

DEFAULT_INTERPRETER_MAP: Mapping[str, str] = {
    name: sys.executable
    for name in ("python", "python3", "/usr/local/bin/python", "/usr/local/bin/python3", "/usr/bin/python3")
}


class ConfigSource(Protocol):
    """Where Secret and ConfigMap data come from: values decoded to text, None when the object is missing."""

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand `$(VAR)` as the kubelet does: a defined VAR is replaced, an undefined one stays as written,
    `$$` is a literal `$`, any other `$` is kept. (A port of Kubernetes' forked `expansion.Expand`.)"""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")
                advance = 1
            elif following == "(":
                closer = text.find(")", cursor + 2)
                if closer == -1:  # an incomplete reference is kept as written
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : closer]
                    out.append(env.get(name, f"$({name})"))
                    advance = closer - cursor
            else:
                out.append("$" + following)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Mapping[str, Any], field_path: str) -> str:
    """The value of a `fieldRef.fieldPath` the kubelet supports for environment variables."""
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs", [])),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs", [])),
    }
    if field_path in simple:
        return str(simple[field_path])
    match = _SUBSCRIPT.match(field_path)
    if match:
        # A missing label or annotation is an empty value, not an error.
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise errors.ContainerConfigError(f"unsupported fieldPath: {field_path}")


_QUANTITY = re.compile(r"^([+-]?[0-9]*\.?[0-9]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_SUFFIXES = {
    **{"n": fractions.Fraction(1, 10**9), "u": fractions.Fraction(1, 10**6), "m": fractions.Fraction(1, 1000)},
    **{"": fractions.Fraction(1), "k": fractions.Fraction(10**3), "M": fractions.Fraction(10**6)},
    **{"G": fractions.Fraction(10**9), "T": fractions.Fraction(10**12), "P": fractions.Fraction(10**15)},
    **{"E": fractions.Fraction(10**18)},
    **{
        suffix: fractions.Fraction(2 ** (10 * (i + 1))) for i, suffix in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
    },
}


def parse_quantity(text: str) -> fractions.Fraction:
    """A Kubernetes resource quantity ("500m", "1Gi", "1e3") as an exact number."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise errors.ContainerConfigError(f"invalid resource quantity {text!r}")
    number, suffix = fractions.Fraction(match.group(1)), match.group(2)
    if suffix[:1] in ("e", "E"):
        return number * fractions.Fraction(10) ** int(suffix[1:])
    if suffix not in _SUFFIXES:
        raise errors.ContainerConfigError(f"invalid resource quantity {text!r}: unknown suffix {suffix!r}")
    return number * _SUFFIXES[suffix]


def local_allocatable() -> dict[str, str]:
    """This machine's capacity, which the kubelet reports for `limits.*` a container does not set."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": str(memory),
        "ephemeral-storage": str(shutil.disk_usage("/").total),
    }


def resource_value(
    pod: Mapping[str, Any], container: Mapping[str, Any], ref: Mapping[str, Any], *, allocatable: Mapping[str, str]
) -> str:
    """A `resourceFieldRef` value: the container's request or limit divided by `divisor`, rounded up."""
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise errors.ContainerConfigError(f"unsupported resourceFieldRef.resource: {ref.get('resource')!r}")
    target = container
    if ref.get("containerName"):
        containers = pod.get("spec", {}).get("containers", [])
        target = next((c for c in containers if c.get("name") == ref["containerName"]), container)
    quantity = (target.get("resources") or {}).get(kind, {}).get(resource)
    if quantity is None:
        quantity = allocatable.get(resource, "0") if kind == "limits" else "0"
    value = parse_quantity(quantity) / parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(value))


def _valid_env_name(name: str) -> bool:
    # Kubernetes' relaxed validation: printable ASCII except '='.
    return bool(name) and "=" not in name and all(32 <= ord(ch) < 127 for ch in name)


def resolve_environment(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    source: ConfigSource,
    *,
    allocatable: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: `envFrom` sources in order, then `env` entries
    in order (later wins; `value` may refer to earlier variables as `$(NAME)`).

    Raises ContainerConfigError with the kubelet's message when a required Secret, ConfigMap or key is
    missing (`optional: true` skips the variable instead).
    """
    namespace = pod.get("metadata", {}).get("namespace", "")
    env: dict[str, str] = {}

    for source_ref in container.get("envFrom") or []:
        prefix = source_ref.get("prefix") or ""
        if "secretRef" in source_ref:
            ref, kind = source_ref["secretRef"], "secret"
            data = source.secret(namespace, ref.get("name", ""))
        else:
            ref, kind = source_ref.get("configMapRef") or {}, "configmap"
            data = source.config_map(namespace, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise errors.ContainerConfigError(f'{kind} "{ref.get("name", "")}" not found')
        for key, value in data.items():
            # The kubelet skips (and reports in an Event) names that cannot be environment variables.
            if _valid_env_name(prefix + key):
                env[prefix + key] = value

    for var in container.get("env") or []:
        name = var["name"]
        value_from = var.get("valueFrom")
        if var.get("value") or not value_from:
            env[name] = expand(var.get("value") or "", env)
        elif "fieldRef" in value_from:
            env[name] = field_value(pod, value_from["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in value_from:
            env[name] = resource_value(
                pod, container, value_from["resourceFieldRef"], allocatable=allocatable or local_allocatable()
            )
        else:
            resolved = _key_ref_value(namespace, value_from, source)
            if resolved is not None:
                env[name] = resolved
    return env


def _key_ref_value(namespace: str, value_from: Mapping[str, Any], source: ConfigSource) -> str | None:
    """A secretKeyRef / configMapKeyRef value; None when it is optional and missing."""
    if "secretKeyRef" in value_from:
        ref, kind, noun = value_from["secretKeyRef"], "secret", "Secret"
        data = source.secret(namespace, ref.get("name", ""))
    else:
        ref, kind, noun = value_from.get("configMapKeyRef") or {}, "configmap", "ConfigMap"
        data = source.config_map(namespace, ref.get("name", ""))
    name, key = ref.get("name", ""), ref.get("key", "")
    if data is None:
        if ref.get("optional"):
            return None
        raise errors.ContainerConfigError(f'{kind} "{name}" not found')
    if key not in data:
        if ref.get("optional"):
            return None
        raise errors.ContainerConfigError(f"couldn't find key {key} in {noun} {namespace}/{name}")
    return data[key]


def map_interpreter(argv: Sequence[str], interpreter_map: Mapping[str, str]) -> list[str]:
    """argv with its program replaced when the image's interpreter has a local stand-in."""
    if not argv:
        return []
    return [interpreter_map.get(argv[0], argv[0]), *argv[1:]]


def container_command(
    container: Mapping[str, Any], env: Mapping[str, str], *, interpreter_map: Mapping[str, str]
) -> list[str]:
    """`command + args` expanded with the container's environment (as the kubelet does) and the
    interpreter mapped. A container without `command` would run its image's entrypoint, unknown here."""
    command = [expand(str(part), env) for part in container.get("command") or []]
    args = [expand(str(part), env) for part in container.get("args") or []]
    if not command:
        raise errors.ContainerConfigError(
            f"container {container.get('name')!r} has no command: the local executor cannot know the entrypoint "
            f"of image {container.get('image')!r}; set `command` in the pod template",
            reason="CreateContainerError",
        )
    return map_interpreter(command + args, interpreter_map)


class ApiConfigSource:
    """Secrets and ConfigMaps read from the API server, as the kubelet reads them."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        secret = self._read(self._core.read_namespaced_secret, namespace, name)
        if secret is None:
            return None
        # surrogateescape keeps non-UTF-8 bytes intact on their way into the process environment.
        data = secret.get("data") or {}
        return {key: base64.b64decode(value).decode("utf-8", "surrogateescape") for key, value in data.items()}

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        config_map = self._read(self._core.read_namespaced_config_map, namespace, name)
        if config_map is None:
            return None
        return dict(config_map.get("data") or {})  # binaryData never reaches the environment

    @staticmethod
    def _read(read: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(pod_run.response_json(read(name, namespace, _preload_content=False)))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

"""Run Jobs' pods as local processes, as a kubelet would, where no container runtime runs.

    python -m assaylab.executor --kubeconfig K [--namespace N ...] [--selector S] [--workdir D]

The control plane in `assaylab.controlplane` has no scheduler and no kubelet, so the Pods that the job
controller creates stay Pending. `LocalExecutor` plays both parts for the pods it selects (default: pods
owned by Jobs, label `batch.kubernetes.io/job-name`), so the operator sees what it would see in a cluster:

- claims a Pending, unscheduled pod once (annotation `assay.dev/executor`, resourceVersion-guarded, so two
  executors never run the same pod) and binds it to the node name `assay-local` through `pods/binding`
  (the API server does not require a Node object for that);
- resolves the first container's environment as the kubelet does (`env`, `$(VAR)` expansion, secretKeyRef,
  configMapKeyRef, fieldRef, resourceFieldRef, envFrom with prefix); a missing Secret or key keeps the pod
  Pending with `waiting.reason: CreateContainerConfigError` and the kubelet's message, retried until it
  appears;
- mints a token for the pod's ServiceAccount (TokenRequest, bound to the pod) and hands the process a
  kubeconfig with it in `KUBECONFIG`, so the process has exactly the RBAC rights of that ServiceAccount;
- runs `command + args` with a leading `python` mapped to this interpreter, in a directory of its own,
  output to a log file (path in the annotation `assay.dev/executor-log`), never to our own output;
- reports Running / Succeeded / Failed through `pods/status` with the container state a kubelet writes,
  including the termination message;
- on pod deletion (a deleted Job, a suspended Job, a Job past its activeDeadlineSeconds: the job controller
  deletes the pods) sends SIGTERM, then SIGKILL after the grace period (capped at 10 s), writes the terminal
  status and removes the pod as the kubelet does (delete with grace period 0).

What a process sees, compared with a container:
    KUBECONFIG             a kubeconfig for the pod's ServiceAccount (only when a token would be mounted)
    ASSAY_TERMINATION_LOG  the local file standing in for `terminationMessagePath` (/dev/termination-log):
                           what the program writes there becomes `state.terminated.message`
    HOSTNAME               the pod's hostname: `spec.hostname` (`<job>-<index>` in Indexed Jobs), else its name
    HOME, working dir      a directory of the pod's own under the executor's workdir
    KUBERNETES_SERVICE_*   never set, so clients do not try in-cluster config
and only a few variables of the executor's own environment (PATH, locale, PYTHONPATH, ...: INHERITED_ENV).
Not modelled: images (the local interpreter stands in), volumes, `workingDir`, securityContext, probes,
service links, init or extra containers (a pod with them stays Pending with a message saying so).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import enum
import fractions
import json
import logging
import math
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import yaml
from kubernetes import client, config, watch

log = logging.getLogger("assaylab.executor")

EXECUTOR_ANNOTATION = "assay.dev/executor"
LOG_ANNOTATION = "assay.dev/executor-log"
NODE_NAME = "assay-local"
LOCAL_IP = "127.0.0.1"
DEFAULT_SELECTOR = "batch.kubernetes.io/job-name"
TERMINATION_LOG_ENV = "ASSAY_TERMINATION_LOG"
DEFAULT_INTERPRETER_MAP: Mapping[str, str] = {
    name: sys.executable
    for name in ("python", "python3", "/usr/local/bin/python", "/usr/local/bin/python3", "/usr/bin/python3")
}
# A container starts from its image's environment, not the node's: pass on only what a local process needs.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR")
MAX_GRACE_SECONDS = 10.0
CONFIG_RETRY_SECONDS = 2.0
TOKEN_EXPIRATION_SECONDS = 24 * 3600  # a kubelet refreshes the token file; a kubeconfig is read once
MAX_TERMINATION_MESSAGE_BYTES = 4096  # the kubelet's limit per container
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


class ExecutorError(RuntimeError):
    """A LocalExecutor call or its watch could not be served; the message says which pod or which event."""


class PodNotFoundError(ExecutorError):
    """No pod of that name was run (or is running) by this executor."""


class _WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class ContainerConfigError(Exception):
    """The container cannot be started yet; `reason` and the message are what a kubelet reports in
    `containerStatuses[].state.waiting` (the pod stays Pending and the executor retries)."""

    def __init__(self, message: str, *, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------------------
# Pure part: from a pod (a dict as the API serves it, camelCase) to the process's environment and command.
# ---------------------------------------------------------------------------------------------------------


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
    raise ContainerConfigError(f"unsupported fieldPath: {field_path}")


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
        raise ContainerConfigError(f"invalid resource quantity {text!r}")
    number, suffix = fractions.Fraction(match.group(1)), match.group(2)
    if suffix[:1] in ("e", "E"):
        return number * fractions.Fraction(10) ** int(suffix[1:])
    if suffix not in _SUFFIXES:
        raise ContainerConfigError(f"invalid resource quantity {text!r}: unknown suffix {suffix!r}")
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
        raise ContainerConfigError(f"unsupported resourceFieldRef.resource: {ref.get('resource')!r}")
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
            raise ContainerConfigError(f'{kind} "{ref.get("name", "")}" not found')
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
        raise ContainerConfigError(f'{kind} "{name}" not found')
    if key not in data:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {noun} {namespace}/{name}")
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
        raise ContainerConfigError(
            f"container {container.get('name')!r} has no command: the local executor cannot know the entrypoint "
            f"of image {container.get('image')!r}; set `command` in the pod template",
            reason="CreateContainerError",
        )
    return map_interpreter(command + args, interpreter_map)


def exit_code(returncode: int) -> int:
    """A Popen returncode as a container runtime reports it: death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(current: Sequence[Mapping[str, Any]], wanted: Mapping[str, tuple[bool, str | None]]) -> list[dict]:
    """The pod's conditions with `wanted` ({type: (status, reason)}) applied; a condition keeps its
    lastTransitionTime unless its status changes, as the kubelet keeps it."""
    now = _now()
    result = {c["type"]: dict(c) for c in current}
    for kind, (status, reason) in wanted.items():
        text = "True" if status else "False"
        previous = result.get(kind, {})
        condition: dict[str, Any] = {"type": kind, "status": text, "lastProbeTime": None}
        condition["lastTransitionTime"] = (
            previous["lastTransitionTime"]
            if previous.get("status") == text and previous.get("lastTransitionTime")
            else now
        )
        if reason:
            condition["reason"] = reason
        result[kind] = condition
    return list(result.values())


# ---------------------------------------------------------------------------------------------------------
# The executor: a watch thread per scope feeds the latest pod objects to one reconcile thread, which owns
# the processes and compares, for each pod, what the API says with what runs here.
# ---------------------------------------------------------------------------------------------------------


class _State(enum.Enum):
    WAITING = "waiting"  # claimed and bound, not started yet (configuration missing)
    RUNNING = "running"
    BACKOFF = "backoff"  # restartPolicy OnFailure/Always: waiting to start again
    STOPPING = "stopping"  # SIGTERM sent; SIGKILL at kill_at
    DONE = "done"  # terminal status written (or the pod is gone)


@dataclasses.dataclass
class _PodRun:
    """What this executor does for one pod."""

    namespace: str
    name: str
    uid: str
    pod: dict[str, Any]
    directory: pathlib.Path
    state: _State = _State.WAITING
    process: subprocess.Popen[bytes] | None = None
    start_time: str = ""  # status.startTime: when the pod was first handled here
    started_at: str = ""  # when the current process started
    restart_count: int = 0
    last_terminated: dict[str, Any] | None = None
    waiting: tuple[str, str] | None = None  # (reason, message) last reported while not running
    retry_at: float = 0.0
    kill_at: float | None = None
    killed: bool = False
    stop_reason: str | None = None  # "Deleted" or "DeadlineExceeded"
    deletion_done: bool = False
    kubeconfig: pathlib.Path | None = None
    container_id: str = ""
    unsent_status: dict[str, Any] | None = None  # decided but not yet written (the API call failed)

    @property
    def log_path(self) -> pathlib.Path:
        return self.directory / "log"

    @property
    def termination_log(self) -> pathlib.Path:
        return self.directory / "termination-log"

    @property
    def workdir(self) -> pathlib.Path:
        return self.directory / "work"

    @property
    def container(self) -> dict[str, Any]:
        return dict(self.pod["spec"]["containers"][0])


def _json(response: Any) -> Any:
    return json.loads(response.data)


class _ApiConfigSource:
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
            return dict(_json(read(name, namespace, _preload_content=False)))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


class LocalExecutor:
    """Runs the selected pods of a cluster without a kubelet as local processes and reports their status.

    start() returns at once; the work happens in background threads until stop(), which kills every
    process this executor started. Usable as a context manager.
    """

    def __init__(
        self,
        kubeconfig: pathlib.Path,
        *,
        namespaces: list[str] | None = None,
        selector: str | None = None,
        interpreter_map: Mapping[str, str] | None = None,
        workdir: pathlib.Path | None = None,
        executor_id: str | None = None,
        inherit_env: Iterable[str] = INHERITED_ENV,
    ) -> None:
        self.kubeconfig = pathlib.Path(kubeconfig)
        self.namespaces = list(namespaces) if namespaces else None
        self.selector = DEFAULT_SELECTOR if selector is None else selector
        self.interpreter_map = dict(DEFAULT_INTERPRETER_MAP if interpreter_map is None else interpreter_map)
        self.workdir = pathlib.Path(workdir) if workdir else pathlib.Path(tempfile.mkdtemp(prefix="assay-executor-"))
        # The id marks the pods this executor claimed; give the same id again to adopt them after a restart.
        self.id = executor_id or f"{NODE_NAME}-{uuid.uuid4().hex[:8]}"
        self.inherit_env = tuple(inherit_env)

        self._configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=self._configuration)
        self._api = client.ApiClient(self._configuration)
        self._core = client.CoreV1Api(self._api)
        self._source = _ApiConfigSource(self._core)

        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._seen: dict[tuple[str, str], dict[str, Any] | None] = {}  # latest object; None = gone
        self._runs: dict[tuple[str, str], _PodRun] = {}
        self._logs: dict[tuple[str, str], pathlib.Path] = {}  # kept after the pod is gone
        self._api_retry_at: dict[tuple[str, str], float] = {}
        self._threads: list[threading.Thread] = []

    # -- public surface ---------------------------------------------------------------------------------

    def start(self) -> LocalExecutor:
        """Start watching and running pods in background threads; returns at once."""
        scopes: list[str | None] = list(self.namespaces) if self.namespaces else [None]
        for scope in scopes:
            self._threads.append(
                threading.Thread(
                    target=self._watch, args=(scope,), name=f"executor-watch-{scope or 'all'}", daemon=True
                )
            )
        self._threads.append(threading.Thread(target=self._reconcile_forever, name="executor-reconcile", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("executor %s running pods matching %r; pod directories under %s", self.id, self.selector, self.workdir)
        return self

    def stop(self) -> None:
        """Stop watching and kill every process this executor started (SIGTERM, SIGKILL after 2 s).
        Pod statuses are left as they are: a kubelet that stops does not report either."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            if thread.name == "executor-reconcile":
                thread.join(30)
        with self._lock:
            processes = [run.process for run in self._runs.values() if run.process and run.process.poll() is None]
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(5)
        self._api.close()

    def __enter__(self) -> LocalExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running_pods(self) -> list[str]:
        """Names of the pods whose process is alive right now."""
        with self._lock:
            return sorted(
                run.name for run in self._runs.values() if run.process is not None and run.process.poll() is None
            )

    def kill(self, pod_name: str, sig: int = signal.SIGKILL, *, namespace: str | None = None) -> None:
        """Send `sig` to a running pod's process (and its children), as if it crashed or was OOM-killed;
        the pod then terminates as its restartPolicy says. Raises PodNotFoundError if it is not running."""
        with self._lock:
            processes = [
                run.process
                for run in self._runs.values()
                if run.name == pod_name
                and (namespace is None or run.namespace == namespace)
                and run.process is not None
                and run.process.poll() is None
            ]
        if not processes:
            raise PodNotFoundError(f"pod {pod_name!r} has no running process in executor {self.id}")
        _signal_group(processes[0], sig)
        self._wake.set()

    def logs(self, pod: str, *, namespace: str | None = None) -> str:
        """Everything the pod's process wrote to stdout and stderr (all its restarts), also after it ended."""
        with self._lock:
            paths = [path for (ns, name), path in self._logs.items() if name == pod and namespace in (None, ns)]
        if not paths:
            raise PodNotFoundError(f"executor {self.id} never ran pod {pod!r}")
        return paths[0].read_text(errors="replace") if paths[0].exists() else ""

    # -- watching ---------------------------------------------------------------------------------------

    def _list_function(self, scope: str | None) -> Any:
        if scope is None:
            return self._core.list_pod_for_all_namespaces, ()
        return self._core.list_namespaced_pod, (scope,)

    def _watch(self, scope: str | None) -> None:
        """List, then watch from the list's resourceVersion; list again when the watch expires (410 Gone)
        or fails, so no change is missed for good."""
        function, args = self._list_function(scope)
        where = scope or "all namespaces"
        while not self._stopping.is_set():
            try:
                listing = _json(function(*args, label_selector=self.selector, _preload_content=False))
                self._observe_listing(scope, listing["items"])
                version = listing["metadata"]["resourceVersion"]
                while not self._stopping.is_set():
                    version = self._watch_once(function, args, version)
            except _WatchExpired:
                log.debug("watch of pods in %s expired; listing again", where)
            except Exception as exc:  # the API server may be restarting: list again after a pause
                if not self._stopping.is_set():
                    log.warning("watching pods in %s failed: %s; listing again", where, exc)
                    self._stopping.wait(1.0)

    def _watch_once(self, function: Any, args: tuple[str, ...], version: str) -> str:
        """One watch request (the server ends it after a few seconds, so stop() is noticed); returns the
        resourceVersion to continue from."""
        response = function(
            *args,
            label_selector=self.selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=5,
            _request_timeout=30,
            _preload_content=False,
        )
        try:
            for line in watch.watch.iter_resp_lines(response):
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:
                        raise _WatchExpired()
                    raise ExecutorError(f"watch error: {obj.get('message')}")
                version = obj["metadata"].get("resourceVersion", version)
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._observe(obj)
                elif event["type"] == "DELETED":
                    self._observe(obj, gone=True)
        finally:
            response.close()
            response.release_conn()
        return version

    def _observe(self, pod: dict[str, Any], *, gone: bool = False) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._lock:
            self._seen[key] = None if gone else pod
        self._wake.set()

    def _observe_listing(self, scope: str | None, pods: list[dict[str, Any]]) -> None:
        listed = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods}
        with self._lock:
            for key in list(self._seen):
                if (scope is None or key[0] == scope) and key not in listed:
                    self._seen[key] = None  # deleted while we were not watching
            self._seen.update(listed)
        self._wake.set()

    # -- reconciling ------------------------------------------------------------------------------------

    def _reconcile_forever(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.2)  # processes are polled, so wake up regularly even without events
            self._wake.clear()
            with self._lock:
                seen = dict(self._seen)
            for key in set(seen) | set(self._runs):
                if self._stopping.is_set():
                    return
                if time.monotonic() < self._api_retry_at.get(key, 0.0):
                    continue
                try:
                    self._reconcile(key, seen.get(key))
                except client.ApiException as exc:
                    log.warning("pod %s/%s: API call failed (%s %s); retrying", *key, exc.status, exc.reason)
                    self._api_retry_at[key] = time.monotonic() + 1.0
                except Exception:
                    log.exception("pod %s/%s: reconcile failed; retrying", *key)
                    self._api_retry_at[key] = time.monotonic() + 1.0
            with self._lock:
                for key, pod in list(self._seen.items()):
                    if pod is None and key not in self._runs:
                        del self._seen[key]
                        self._api_retry_at.pop(key, None)

    def _reconcile(self, key: tuple[str, str], pod: dict[str, Any] | None) -> None:
        run = self._runs.get(key)
        if run is None:
            if pod is not None:
                self._adopt_or_claim(key, pod)
            return

        if pod is None or pod["metadata"]["uid"] != run.uid:
            self._reconcile_gone(key, run)
            return
        run.pod = pod
        self._send_status(run)
        deleting = bool(pod["metadata"].get("deletionTimestamp"))

        if run.state in (_State.RUNNING, _State.STOPPING) and run.process and run.process.poll() is not None:
            self._on_exit(run)
        elif run.state is _State.RUNNING and deleting:
            self._begin_stop(run, "Deleted")
        elif run.state is _State.RUNNING and self._past_deadline(run):
            self._begin_stop(run, "DeadlineExceeded")
        elif run.state is _State.STOPPING and run.kill_at is not None and time.monotonic() >= run.kill_at:
            if not run.killed and run.process:
                log.info("pod %s/%s: grace period over, SIGKILL", run.namespace, run.name)
                _signal_group(run.process, signal.SIGKILL)
                run.killed = True
        elif run.state in (_State.WAITING, _State.BACKOFF) and deleting:
            # Deleted before (or between) runs: the kubelet reports the pod failed.
            self._write_terminal(run, phase="Failed", container_state={"waiting": self._waiting_state(run)})
        elif run.state in (_State.WAITING, _State.BACKOFF) and self._past_deadline(run):
            waiting = {"waiting": self._waiting_state(run)}
            self._write_terminal(
                run, phase="Failed", container_state=waiting, reason="DeadlineExceeded", message=DEADLINE_MESSAGE
            )
        elif run.state in (_State.WAITING, _State.BACKOFF) and time.monotonic() >= run.retry_at:
            self._start(run)

        if run.state is _State.DONE and deleting and not run.deletion_done:
            # The kubelet's last word on a deleted pod: remove it now that its containers are gone (the
            # job-tracking finalizer keeps it until the job controller has counted it).
            try:
                self._core.delete_namespaced_pod(
                    run.name,
                    run.namespace,
                    body=client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=run.uid)
                    ),
                    _preload_content=False,
                )
            except client.ApiException as exc:
                if exc.status not in (404, 409):  # already gone, or a namesake (another uid)
                    raise
            run.deletion_done = True

    def _reconcile_gone(self, key: tuple[str, str], run: _PodRun) -> None:
        """The pod object is gone (or replaced by a namesake): stop its process, then forget it."""
        alive = run.process is not None and run.process.poll() is None
        if alive and run.state is not _State.STOPPING:
            self._begin_stop(run, "Deleted")
        elif alive and run.kill_at is not None and time.monotonic() >= run.kill_at and not run.killed:
            _signal_group(run.process, signal.SIGKILL)  # type: ignore[arg-type]  # alive implies a process
            run.killed = True
        elif not alive:
            with self._lock:
                del self._runs[key]

    def _adopt_or_claim(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        metadata, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        owner = (metadata.get("annotations") or {}).get(EXECUTOR_ANNOTATION)
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        if owner == self.id and spec.get("nodeName") == NODE_NAME:
            # Ours but not in memory: this executor restarted with the same id.
            run = self._new_run(key, pod)
            if status.get("phase") == "Running":
                # The process died with the old executor; the kubelet reports a container it cannot find so.
                lost = {"exitCode": 137, "reason": "ContainerStatusUnknown", "finishedAt": _now()}
                lost["message"] = "The container could not be located when the executor restarted"
                self._write_terminal(run, phase="Failed", container_state={"terminated": lost})
            # else it never started: WAITING, and the next pass starts it (or reports it failed if deleted)
        elif owner == self.id and not spec.get("nodeName"):
            self._bind(key, pod)  # claimed, but binding failed last time
        elif (
            owner is None
            and not spec.get("nodeName")
            and not metadata.get("deletionTimestamp")
            and not spec.get("schedulingGates")  # a scheduler would wait for these too
        ):
            self._claim(key, pod)

    def _new_run(self, key: tuple[str, str], pod: dict[str, Any]) -> _PodRun:
        run = _PodRun(
            namespace=key[0],
            name=key[1],
            uid=pod["metadata"]["uid"],
            pod=pod,
            directory=self._pod_directory(key),
            start_time=pod.get("status", {}).get("startTime") or _now(),
        )
        run.workdir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._runs[key] = run
            self._logs[key] = run.log_path
        return run

    def _pod_directory(self, key: tuple[str, str]) -> pathlib.Path:
        return self.workdir / key[0] / key[1]

    def _claim(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        """Mark the pod as ours, only if nobody changed it since we saw it; then bind it."""
        namespace, name = key
        patch = {
            "metadata": {
                "resourceVersion": pod["metadata"]["resourceVersion"],  # the guard: 409 if anyone wrote first
                "annotations": {EXECUTOR_ANNOTATION: self.id, LOG_ANNOTATION: str(self._pod_directory(key) / "log")},
            }
        }
        try:
            claimed = _json(
                self._core.patch_namespaced_pod(
                    name, namespace, patch, _content_type="application/merge-patch+json", _preload_content=False
                )
            )
        except client.ApiException as exc:
            if exc.status in (404, 409):  # gone, or changed: the watch brings the new version
                return
            raise
        self._bind(key, claimed)

    def _bind(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        """Schedule the pod onto our node (as kube-scheduler does, through pods/binding) and start it."""
        namespace, name = key
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=name),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=NODE_NAME),
        )
        try:
            self._core.create_namespaced_pod_binding(name, namespace, binding, _preload_content=False)
        except client.ApiException as exc:
            if exc.status in (404, 409):  # deleted meanwhile, or bound by a real scheduler
                log.info("pod %s/%s: binding refused (%s); leaving it", namespace, name, exc.status)
                return
            raise
        pod["spec"]["nodeName"] = NODE_NAME
        log.info("pod %s/%s: claimed and bound to %s", namespace, name, NODE_NAME)
        self._start(self._new_run(key, pod))

    # -- running ----------------------------------------------------------------------------------------

    def _start(self, run: _PodRun) -> None:
        """Start the pod's process, or report why it cannot start yet (the pod stays Pending)."""
        pod = _with_local_addresses(run.pod)
        try:
            extra = [c["name"] for c in pod["spec"].get("initContainers") or []] + [
                c["name"] for c in pod["spec"]["containers"][1:]
            ]
            if extra:
                raise ContainerConfigError(
                    f"the assay local executor runs one container per pod; remove containers {extra} "
                    "from the pod template or run the pod in a real cluster"
                )
            container = run.container
            env = resolve_environment(pod, container, self._source)
            argv = container_command(container, env, interpreter_map=self.interpreter_map)
            kubeconfig = self._credentials(run)
        except ContainerConfigError as exc:
            self._report_waiting(run, exc.reason, str(exc))
            return

        process_env = {name: os.environ[name] for name in self.inherit_env if name in os.environ}
        process_env.update(
            {
                "HOME": str(run.workdir),
                "HOSTNAME": pod["spec"].get("hostname") or run.name,
                TERMINATION_LOG_ENV: str(run.termination_log),
            }
        )
        if kubeconfig is not None:
            process_env["KUBECONFIG"] = str(kubeconfig)
        process_env.update(env)
        for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            process_env.pop(name, None)  # no in-cluster config: the kubeconfig above is the credential

        run.termination_log.write_bytes(b"")
        run.started_at = _now()
        run.container_id = ""
        try:
            with run.log_path.open("ab") as output:
                run.process = subprocess.Popen(
                    argv,
                    cwd=run.workdir,
                    env=process_env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so signals reach its children too
                )
        except OSError as exc:
            # What a container runtime reports when the program cannot be executed.
            run.process = None
            message = f"exec: {argv[0]!r}: {exc.strerror or exc}"
            self._on_exit(run, returncode=128, reason="StartError", message=message)
            return
        run.state = _State.RUNNING
        run.waiting = None
        run.container_id = f"assay://{run.process.pid}"  # the runtime's id; here, the process id
        log.info("pod %s/%s: started pid %s", run.namespace, run.name, run.process.pid)
        self._write_status(
            run,
            phase="Running",
            container_state={"running": {"startedAt": run.started_at}},
            ready=True,
        )

    def _credentials(self, run: _PodRun) -> pathlib.Path | None:
        """A kubeconfig carrying a token of the pod's ServiceAccount, when the pod would get a token mounted
        (the ServiceAccount admission plugin adds that volume unless automounting is switched off)."""
        volumes = run.pod["spec"].get("volumes") or []
        mounted = {m["name"] for m in run.container.get("volumeMounts") or []}
        wants_token = any(
            volume["name"] in mounted
            and any("serviceAccountToken" in s for s in (volume.get("projected") or {}).get("sources", []))
            for volume in volumes
        )
        if not wants_token:
            return None
        if run.kubeconfig is not None:
            return run.kubeconfig
        account = run.pod["spec"].get("serviceAccountName") or "default"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[],  # the API server's own audience
                expiration_seconds=TOKEN_EXPIRATION_SECONDS,
                # Bound to the pod: the token stops working when the pod is deleted, as in a cluster.
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=run.name, uid=run.uid
                ),
            )
        )
        try:
            response = self._core.create_namespaced_service_account_token(
                account, run.namespace, request, _preload_content=False
            )
        except client.ApiException as exc:
            if exc.status == 404:
                raise ContainerConfigError(
                    f'MountVolume.SetUp failed: failed to fetch token: serviceaccounts "{account}" not found',
                    reason="ContainerCreating",
                ) from None
            raise
        token = _json(response)["status"]["token"]
        run.kubeconfig = run.directory / "kubeconfig"
        run.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig_for(run.namespace, account, token)))
        run.kubeconfig.chmod(0o600)
        return run.kubeconfig

    def _kubeconfig_for(self, namespace: str, account: str, token: str) -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self._configuration.host}
        ca_file = self._configuration.ssl_ca_cert
        if ca_file:
            cluster["certificate-authority-data"] = base64.b64encode(pathlib.Path(ca_file).read_bytes()).decode()
        if not self._configuration.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        user = f"system:serviceaccount:{namespace}:{account}"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            # The pod's namespace is the default one, as in-cluster config reads it from the token mount.
            "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": user, "namespace": namespace}}],
            "current-context": "pod",
        }

    def _past_deadline(self, run: _PodRun) -> bool:
        deadline = run.pod["spec"].get("activeDeadlineSeconds")
        if deadline is None:
            return False
        started = datetime.datetime.strptime(run.start_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        return (datetime.datetime.now(datetime.UTC) - started).total_seconds() >= float(deadline)

    def _begin_stop(self, run: _PodRun, reason: str) -> None:
        """SIGTERM now, SIGKILL when the grace period (the deletion's, else the pod's, at most 10 s) ends."""
        metadata, spec = run.pod["metadata"], run.pod["spec"]
        grace = metadata.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        grace = min(float(grace), MAX_GRACE_SECONDS)
        run.state = _State.STOPPING
        run.stop_reason = reason
        run.kill_at = time.monotonic() + grace
        if run.process is not None:
            log.info("pod %s/%s: %s, SIGTERM (grace %.0f s)", run.namespace, run.name, reason, grace)
            _signal_group(run.process, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
            run.killed = grace <= 0

    def _on_exit(self, run: _PodRun, *, returncode: int | None = None, reason: str = "", message: str = "") -> None:
        """Report the ended process: terminal phase, or a restart for restartPolicy OnFailure/Always."""
        code = exit_code(run.process.returncode) if run.process is not None else int(returncode or 0)
        if run.process is not None:
            _signal_group(run.process, signal.SIGKILL)  # children it left behind die with it, as in a container
        run.process = None
        terminated = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": run.started_at,
            "finishedAt": _now(),
            "containerID": run.container_id,
        }
        message = message or self._termination_message(run, code)
        if message:
            terminated["message"] = message
        policy = run.pod["spec"].get("restartPolicy", "Always")
        deleting = bool(run.pod["metadata"].get("deletionTimestamp"))
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)

        if run.stop_reason == "DeadlineExceeded":
            self._write_terminal(
                run,
                phase="Failed",
                container_state={"terminated": terminated},
                reason="DeadlineExceeded",
                message=DEADLINE_MESSAGE,
            )
        elif run.stop_reason or deleting or not restart:
            phase = "Succeeded" if code == 0 else "Failed"
            self._write_terminal(run, phase=phase, container_state={"terminated": terminated})
        else:
            # The kubelet restarts the container in place, with a back-off (10 s doubling there, 1 s here).
            delay = min(2.0**run.restart_count, MAX_GRACE_SECONDS)
            run.restart_count += 1
            run.last_terminated = {"terminated": terminated}
            run.state = _State.BACKOFF
            run.retry_at = time.monotonic() + delay
            back_off = f"back-off {delay:.0f}s restarting failed container={run.container['name']} pod={run.name}"
            run.waiting = ("CrashLoopBackOff", back_off)
            self._write_status(run, phase="Running", container_state={"waiting": self._waiting_state(run)})
        log.info("pod %s/%s: process exited with %s (%s)", run.namespace, run.name, code, run.state.value)

    def _termination_message(self, run: _PodRun, code: int) -> str:
        """What the program wrote to its termination log; with FallbackToLogsOnError and nothing written,
        the tail of its log on failure (as the kubelet does)."""
        with contextlib.suppress(OSError):
            written = run.termination_log.read_bytes()[:MAX_TERMINATION_MESSAGE_BYTES]
            if written:
                return written.decode(errors="replace")
        if code != 0 and run.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with contextlib.suppress(OSError):
                lines = run.log_path.read_bytes().splitlines()[-80:]
                return b"\n".join(lines)[-2048:].decode(errors="replace")
        return ""

    # -- status -----------------------------------------------------------------------------------------

    def _waiting_state(self, run: _PodRun) -> dict[str, str]:
        reason, message = run.waiting or ("ContainerCreating", "")
        return {"reason": reason, "message": message} if message else {"reason": reason}

    def _report_waiting(self, run: _PodRun, reason: str, message: str) -> None:
        """The pod stays Pending with the reason a kubelet gives; written only when it changes."""
        run.retry_at = time.monotonic() + CONFIG_RETRY_SECONDS
        if run.waiting == (reason, message):
            return
        log.info("pod %s/%s: cannot start: %s: %s", run.namespace, run.name, reason, message)
        run.waiting = (reason, message)
        phase = "Running" if run.state is _State.BACKOFF else "Pending"
        self._write_status(run, phase=phase, container_state={"waiting": self._waiting_state(run)})

    def _write_terminal(
        self, run: _PodRun, *, phase: str, container_state: dict[str, Any], reason: str = "", message: str = ""
    ) -> None:
        run.state = _State.DONE
        self._write_status(run, phase=phase, container_state=container_state, reason=reason, message=message)

    def _write_status(
        self,
        run: _PodRun,
        *,
        phase: str,
        container_state: dict[str, Any],
        ready: bool = False,
        reason: str = "",
        message: str = "",
    ) -> None:
        """Write the pod's status as a kubelet would, through the pods/status subresource (merge patch: the
        lists are written whole)."""
        container = run.container
        terminal = phase in ("Succeeded", "Failed")
        container_status: dict[str, Any] = {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": "running" in container_state,
            "restartCount": run.restart_count,
            "state": container_state,
        }
        if run.container_id and "waiting" not in container_state:
            container_status["containerID"] = run.container_id
        if run.last_terminated:
            container_status["lastState"] = run.last_terminated
        not_ready = None if ready else ("PodCompleted" if terminal else "ContainersNotReady")
        conditions = _conditions(
            run.pod.get("status", {}).get("conditions") or [],
            {
                "PodReadyToStartContainers": (not terminal, None),
                "Initialized": (True, None),
                "Ready": (ready, not_ready),
                "ContainersReady": (ready, not_ready),
                "PodScheduled": (True, None),
            },
        )
        status: dict[str, Any] = {
            "phase": phase,
            "startTime": run.start_time,
            "hostIP": LOCAL_IP,
            "hostIPs": [{"ip": LOCAL_IP}],
            "podIP": LOCAL_IP,
            "podIPs": [{"ip": LOCAL_IP}],
            "conditions": conditions,
            "containerStatuses": [container_status],
            "reason": reason or None,
            "message": message or None,
        }
        run.unsent_status = status
        self._send_status(run)

    def _send_status(self, run: _PodRun) -> None:
        """Write the last status decided for the pod; on failure the reconcile loop calls again."""
        if run.unsent_status is None:
            return
        try:
            updated = _json(
                self._core.patch_namespaced_pod_status(
                    run.name,
                    run.namespace,
                    {"status": run.unsent_status},
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
            )
        except client.ApiException as exc:
            if exc.status != 404:  # a deleted pod needs no status
                raise
        else:
            run.pod = updated
        run.unsent_status = None


def _with_local_addresses(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as it will look once running here, for fieldRefs to status.podIP and friends."""
    status = {
        **pod.get("status", {}),
        "hostIP": LOCAL_IP,
        "podIP": LOCAL_IP,
        "hostIPs": [{"ip": LOCAL_IP}],
        "podIPs": [{"ip": LOCAL_IP}],
    }
    return {**pod, "spec": {**pod["spec"], "nodeName": NODE_NAME}, "status": status}


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assaylab.executor", description="Run Jobs' pods as local processes (no kubelet)."
    )
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--namespace", action="append", default=None, help="repeatable; default all namespaces")
    parser.add_argument("--selector", default=None, help=f"label selector (default {DEFAULT_SELECTOR!r})")
    parser.add_argument("--workdir", type=pathlib.Path, default=None, help="pod directories and logs (kept)")
    parser.add_argument("--id", default=None, help="executor id; reuse it to adopt this executor's pods")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # Handlers rather than a blocked signal mask: processes we start inherit the mask and must see SIGTERM.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    executor = LocalExecutor(
        args.kubeconfig, namespaces=args.namespace, selector=args.selector, workdir=args.workdir, executor_id=args.id
    )
    with executor:
        print(f"executor {executor.id}: pod logs under {executor.workdir}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

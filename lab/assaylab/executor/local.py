"""The executor: a watch thread per scope feeds the latest pod objects to one reconcile thread, which owns
the processes and compares, for each pod, what the API says with what runs here."""

from __future__ import annotations

import logging
import pathlib
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client, config

from assaylab.executor import binding, environment, errors, pod_run, pod_status, processes, tokens, watching

log = logging.getLogger("assaylab.executor")

DEFAULT_SELECTOR = "batch.kubernetes.io/job-name"
CONFIG_RETRY_SECONDS = 2.0

State = pod_run.State


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
        inherit_env: Iterable[str] = processes.INHERITED_ENV,
    ) -> None:
        self.kubeconfig = pathlib.Path(kubeconfig)
        self.namespaces = list(namespaces) if namespaces else None
        self.selector = DEFAULT_SELECTOR if selector is None else selector
        self.interpreter_map = dict(environment.DEFAULT_INTERPRETER_MAP if interpreter_map is None else interpreter_map)
        self.workdir = pathlib.Path(workdir) if workdir else pathlib.Path(tempfile.mkdtemp(prefix="assay-executor-"))
        # The id marks the pods this executor claimed; give the same id again to adopt them after a restart.
        self.id = executor_id or f"{pod_run.NODE_NAME}-{uuid.uuid4().hex[:8]}"
        self.inherit_env = tuple(inherit_env)

        self._configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=self._configuration)
        self._api = client.ApiClient(self._configuration)
        self._core = client.CoreV1Api(self._api)
        self._source = environment.ApiConfigSource(self._core)

        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._seen: dict[tuple[str, str], dict[str, Any] | None] = {}  # latest object; None = gone
        self._runs: dict[tuple[str, str], pod_run.PodRun] = {}
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
                    target=watching.watch_pods,
                    args=(self._core, scope),
                    kwargs={
                        "selector": self.selector,
                        "stopping": self._stopping,
                        "on_pod": self._observe,
                        "on_listing": self._observe_listing,
                    },
                    name=f"executor-watch-{scope or 'all'}",
                    daemon=True,
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
            running = [run.process for run in self._runs.values() if run.process and run.process.poll() is None]
        for process in running:
            processes.signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                processes.signal_group(process, signal.SIGKILL)
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
            alive = [
                run.process
                for run in self._runs.values()
                if run.name == pod_name
                and (namespace is None or run.namespace == namespace)
                and run.process is not None
                and run.process.poll() is None
            ]
        if not alive:
            raise errors.PodNotFoundError(f"pod {pod_name!r} has no running process in executor {self.id}")
        processes.signal_group(alive[0], sig)
        self._wake.set()

    def logs(self, pod: str, *, namespace: str | None = None) -> str:
        """Everything the pod's process wrote to stdout and stderr (all its restarts), also after it ended."""
        with self._lock:
            paths = [path for (ns, name), path in self._logs.items() if name == pod and namespace in (None, ns)]
        if not paths:
            raise errors.PodNotFoundError(f"executor {self.id} never ran pod {pod!r}")
        return paths[0].read_text(errors="replace") if paths[0].exists() else ""

    # -- what the watches see ---------------------------------------------------------------------------

    def _observe(self, pod: dict[str, Any], gone: bool) -> None:
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
        pod_status.send(self._core, run)
        deleting = bool(pod["metadata"].get("deletionTimestamp"))

        if run.state in (State.RUNNING, State.STOPPING) and run.process and run.process.poll() is not None:
            self._on_exit(run)
        elif run.state is State.RUNNING and deleting:
            self._begin_stop(run, "Deleted")
        elif run.state is State.RUNNING and processes.past_deadline(run):
            self._begin_stop(run, "DeadlineExceeded")
        elif run.state is State.STOPPING and run.kill_at is not None and time.monotonic() >= run.kill_at:
            if not run.killed and run.process:
                log.info("pod %s/%s: grace period over, SIGKILL", run.namespace, run.name)
                processes.signal_group(run.process, signal.SIGKILL)
                run.killed = True
        elif run.state in (State.WAITING, State.BACKOFF) and deleting:
            # Deleted before (or between) runs: the kubelet reports the pod failed.
            self._write_terminal(run, phase="Failed", container_state={"waiting": pod_status.waiting_state(run)})
        elif run.state in (State.WAITING, State.BACKOFF) and processes.past_deadline(run):
            waiting = {"waiting": pod_status.waiting_state(run)}
            self._write_terminal(
                run,
                phase="Failed",
                container_state=waiting,
                reason="DeadlineExceeded",
                message=pod_status.DEADLINE_MESSAGE,
            )
        elif run.state in (State.WAITING, State.BACKOFF) and time.monotonic() >= run.retry_at:
            self._start(run)

        if run.state is State.DONE and deleting and not run.deletion_done:
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

    def _reconcile_gone(self, key: tuple[str, str], run: pod_run.PodRun) -> None:
        """The pod object is gone (or replaced by a namesake): stop its process, then forget it."""
        alive = run.process is not None and run.process.poll() is None
        if alive and run.state is not State.STOPPING:
            self._begin_stop(run, "Deleted")
        elif alive and run.kill_at is not None and time.monotonic() >= run.kill_at and not run.killed:
            processes.signal_group(run.process, signal.SIGKILL)  # type: ignore[arg-type]  # alive implies a process
            run.killed = True
        elif not alive:
            with self._lock:
                del self._runs[key]

    def _adopt_or_claim(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        metadata, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        owner = (metadata.get("annotations") or {}).get(binding.EXECUTOR_ANNOTATION)
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        if owner == self.id and spec.get("nodeName") == pod_run.NODE_NAME:
            # Ours but not in memory: this executor restarted with the same id.
            run = self._new_run(key, pod)
            if status.get("phase") == "Running":
                # The process died with the old executor; the kubelet reports a container it cannot find so.
                lost = {"exitCode": 137, "reason": "ContainerStatusUnknown", "finishedAt": pod_run.now()}
                lost["message"] = "The container could not be located when the executor restarted"
                self._write_terminal(run, phase="Failed", container_state={"terminated": lost})
            # else it never started: WAITING, and the next pass starts it (or reports it failed if deleted)
        elif owner == self.id and not spec.get("nodeName"):
            self._bind(key, pod)  # claimed, but binding failed last time
        elif binding.claimable(pod):
            claimed = binding.claim(
                self._core, pod, executor_id=self.id, log_path=str(self._pod_directory(key) / "log")
            )
            if claimed is not None:
                self._bind(key, claimed)

    def _bind(self, key: tuple[str, str], pod: dict[str, Any]) -> None:
        if binding.bind(self._core, pod):
            self._start(self._new_run(key, pod))

    def _new_run(self, key: tuple[str, str], pod: dict[str, Any]) -> pod_run.PodRun:
        run = pod_run.PodRun(
            namespace=key[0],
            name=key[1],
            uid=pod["metadata"]["uid"],
            pod=pod,
            directory=self._pod_directory(key),
            start_time=pod.get("status", {}).get("startTime") or pod_run.now(),
        )
        run.workdir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._runs[key] = run
            self._logs[key] = run.log_path
        return run

    def _pod_directory(self, key: tuple[str, str]) -> pathlib.Path:
        return self.workdir / key[0] / key[1]

    # -- running ----------------------------------------------------------------------------------------

    def _start(self, run: pod_run.PodRun) -> None:
        """Start the pod's process, or report why it cannot start yet (the pod stays Pending)."""
        pod = pod_status.with_local_addresses(run.pod)
        try:
            extra = [c["name"] for c in pod["spec"].get("initContainers") or []] + [
                c["name"] for c in pod["spec"]["containers"][1:]
            ]
            if extra:
                raise errors.ContainerConfigError(
                    f"the assay local executor runs one container per pod; remove containers {extra} "
                    "from the pod template or run the pod in a real cluster"
                )
            container = run.container
            env = environment.resolve_environment(pod, container, self._source)
            argv = environment.container_command(container, env, interpreter_map=self.interpreter_map)
            kubeconfig = tokens.credentials(self._core, self._configuration, run)
        except errors.ContainerConfigError as exc:
            self._report_waiting(run, exc.reason, str(exc))
            return

        process_env = processes.process_environment(run, pod, env, kubeconfig=kubeconfig, inherit_env=self.inherit_env)
        run.started_at = pod_run.now()
        run.container_id = ""
        try:
            run.process = processes.spawn(run, argv, process_env)
        except OSError as exc:
            # What a container runtime reports when the program cannot be executed.
            run.process = None
            message = f"exec: {argv[0]!r}: {exc.strerror or exc}"
            self._on_exit(run, returncode=128, reason="StartError", message=message)
            return
        run.state = State.RUNNING
        run.waiting = None
        run.container_id = f"assay://{run.process.pid}"  # the runtime's id; here, the process id
        log.info("pod %s/%s: started pid %s", run.namespace, run.name, run.process.pid)
        pod_status.write(
            self._core,
            run,
            phase="Running",
            container_state={"running": {"startedAt": run.started_at}},
            ready=True,
        )

    def _begin_stop(self, run: pod_run.PodRun, reason: str) -> None:
        """SIGTERM now, SIGKILL when the grace period (the deletion's, else the pod's, at most 10 s) ends."""
        grace = processes.grace_seconds(run.pod)
        run.state = State.STOPPING
        run.stop_reason = reason
        run.kill_at = time.monotonic() + grace
        if run.process is not None:
            log.info("pod %s/%s: %s, SIGTERM (grace %.0f s)", run.namespace, run.name, reason, grace)
            processes.signal_group(run.process, signal.SIGKILL if grace <= 0 else signal.SIGTERM)
            run.killed = grace <= 0

    def _on_exit(
        self, run: pod_run.PodRun, *, returncode: int | None = None, reason: str = "", message: str = ""
    ) -> None:
        """Report the ended process: terminal phase, or a restart for restartPolicy OnFailure/Always."""
        code = processes.exit_code(run.process.returncode) if run.process is not None else int(returncode or 0)
        if run.process is not None:
            processes.signal_group(run.process, signal.SIGKILL)  # children it left behind die with it
        run.process = None
        terminated = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": run.started_at,
            "finishedAt": pod_run.now(),
            "containerID": run.container_id,
        }
        message = message or processes.termination_message(run, code)
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
                message=pod_status.DEADLINE_MESSAGE,
            )
        elif run.stop_reason or deleting or not restart:
            phase = "Succeeded" if code == 0 else "Failed"
            self._write_terminal(run, phase=phase, container_state={"terminated": terminated})
        else:
            # The kubelet restarts the container in place, with a back-off.
            delay = processes.restart_delay(run.restart_count)
            run.restart_count += 1
            run.last_terminated = {"terminated": terminated}
            run.state = State.BACKOFF
            run.retry_at = time.monotonic() + delay
            back_off = f"back-off {delay:.0f}s restarting failed container={run.container['name']} pod={run.name}"
            run.waiting = ("CrashLoopBackOff", back_off)
            pod_status.write(
                self._core, run, phase="Running", container_state={"waiting": pod_status.waiting_state(run)}
            )
        log.info("pod %s/%s: process exited with %s (%s)", run.namespace, run.name, code, run.state.value)

    # -- status -----------------------------------------------------------------------------------------

    def _report_waiting(self, run: pod_run.PodRun, reason: str, message: str) -> None:
        """The pod stays Pending with the reason a kubelet gives; written only when it changes."""
        run.retry_at = time.monotonic() + CONFIG_RETRY_SECONDS
        if run.waiting == (reason, message):
            return
        log.info("pod %s/%s: cannot start: %s: %s", run.namespace, run.name, reason, message)
        run.waiting = (reason, message)
        phase = "Running" if run.state is State.BACKOFF else "Pending"
        pod_status.write(self._core, run, phase=phase, container_state={"waiting": pod_status.waiting_state(run)})

    def _write_terminal(
        self,
        run: pod_run.PodRun,
        *,
        phase: str,
        container_state: dict[str, Any],
        reason: str = "",
        message: str = "",
    ) -> None:
        run.state = State.DONE
        pod_status.write(self._core, run, phase=phase, container_state=container_state, reason=reason, message=message)

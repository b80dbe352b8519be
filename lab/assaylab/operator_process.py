"""The operator as a separate process (`python -m assay operator`), so tests can SIGKILL it mid-action and
restart it, exactly as a crashed pod would be."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import httpx

from assay import egress
from assaylab.controlplane import free_port

# Everything in the lab listens on loopback, which assay's egress rule refuses unless configured to allow it:
# configure it here (the operator hands it on to its evaluation Jobs) rather than weaken the default.
LOOPBACK_EGRESS = {egress.ENV_ALLOW_LOOPBACK: "true"}


class OperatorProcess:
    """`assay operator` against a kubeconfig, logging to a file; liveness and readiness via its probes
    (`/healthz`: alive, a standby too; `/leader`: leading and its alert index warm)."""

    def __init__(
        self,
        kubeconfig: pathlib.Path,
        *,
        log_path: pathlib.Path,
        reconcile_interval: float = 1.0,
        webhook_port: int | None = None,
        webhook_token: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.reconcile_interval = reconcile_interval
        self.webhook_port = webhook_port
        self.webhook_token = webhook_token
        self.extra_env = extra_env or {}
        self.metrics_port = 0
        self.liveness_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60, wait_for: str = "ready") -> OperatorProcess:
        """Start it and wait until it is `ready` (leading, warm) or only `live` (a standby)."""
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            ASSAY_RECONCILE_INTERVAL=str(self.reconcile_interval),
            ASSAY_ROUTE_CHECK_INTERVAL=str(self.reconcile_interval),
            ASSAY_METRICS_PORT=str(self.metrics_port),
            PYTHONUNBUFFERED="1",
            ASSAY_BIND_HOST="127.0.0.1",
            **LOOPBACK_EGRESS,
        )
        if self.webhook_port:
            env["ASSAY_WEBHOOK_PORT"] = str(self.webhook_port)
        if self.webhook_token:
            env["ASSAY_WEBHOOK_TOKEN"] = self.webhook_token
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process until stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assay", "operator", "--health-port", str(self.liveness_port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
            try:
                path = "/leader" if wait_for == "ready" else "/healthz"
                if httpx.get(f"http://127.0.0.1:{self.liveness_port}{path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not live after {timeout}s; see {self.log_path}")

    def ready(self) -> bool:
        """Whether it leads and its alert index is warm (`/leader` answers 200)."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/leader", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, *, timeout: float = 60) -> float:
        """Block until ready; returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"operator not ready after {timeout}s; see {self.log_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers, like a node losing the pod."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

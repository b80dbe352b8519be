"""A real LiteLLM proxy for tests, the demo and benchmarks: its config, and the proxy as a subprocess.

The proxy is the pinned release that `hack/litellm.sh` installs into its own venv outside the repository;
assay never imports litellm, it talks to the proxy over HTTP like any application would. `build_config`
points every model group at the LLM simulator (`openai/<model>` with the simulator's `/v1` as api_base)
and maps route aliases with `router_settings.model_group_alias`, as the LiteLLM gateway adapter does in a
cluster. A config edit needs a restart: without a database the proxy has no reload endpoint.

The proxy's output goes to a log file (`LiteLLMProxy.log_path`), never to the test's output; LiteLLM
does not log prompts at its default level and this module never raises its level.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

LITELLM_VERSION = "1.108.7"
FAKE_API_KEY = "sk-fake"
# LiteLLM 1.108.7 refuses to start without a master key, or with a publicly known one such as sk-1234.
TEST_MASTER_KEY = "sk-assay-test-master-key"
READINESS_PATH = "/health/liveliness"


class LiteLLMNotInstalledError(RuntimeError):
    """The pinned LiteLLM proxy is not installed; run hack/litellm.sh."""


class LiteLLMStartError(RuntimeError):
    """The proxy exited or did not become ready; the message names its log file."""


def venv_dir() -> Path:
    """Where hack/litellm.sh installs the proxy (ASSAY_LITELLM_VENV overrides, as in the script)."""
    override = os.environ.get("ASSAY_LITELLM_VENV")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "assay" / f"litellm-{LITELLM_VERSION}"


def find_litellm(*, bin_dir: Path | None = None) -> Path | None:
    """The `litellm` console script of the pinned install, or None when it is not installed."""
    directory = bin_dir or venv_dir() / "bin"
    script = directory / "litellm"
    if not (script.is_file() and os.access(script, os.X_OK)):
        return None
    # The dist-info directory names the installed version; reading it is instant (the CLI's --version
    # imports litellm and tries to fetch the model cost map from the web).
    site_packages = directory.parent.glob("lib/python*/site-packages")
    for packages in site_packages:
        # hack/litellm.sh adds prometheus-client (the proxy exits at startup with the prometheus callback
        # but without it) and prisma (without it a missing key is a 500, not a 401).
        wanted = (f"litellm-{LITELLM_VERSION}.dist-info", "prometheus_client-*.dist-info", "prisma-*.dist-info")
        if all(any(packages.glob(pattern)) for pattern in wanted):
            return script
    return None


def build_config(
    *,
    simulator_url: str,
    models: Iterable[str],
    aliases: Mapping[str, str] | None = None,
    master_key: str = TEST_MASTER_KEY,
    api_key: str = FAKE_API_KEY,
    num_retries: int = 0,
) -> dict[str, Any]:
    """A LiteLLM proxy config serving each simulator model as a model group of the same name.

    `aliases` maps a route alias (the `model` applications send) to a model group. `num_retries` is 0 by
    default so the simulator's 429s and 500s reach the client, whose retry policy is the one under test.
    """
    api_base = simulator_url.rstrip("/") + "/v1"
    model_list = [
        {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_base": api_base, "api_key": api_key}}
        for name in models
    ]
    return {
        "model_list": model_list,
        "router_settings": {"model_group_alias": dict(aliases or {}), "num_retries": num_retries},
        "litellm_settings": {
            "callbacks": ["prometheus"],
            "require_auth_for_metrics_endpoint": False,
            "num_retries": num_retries,
            "telemetry": False,
        },
        "general_settings": {"master_key": master_key},
    }


def write_config(path: str | Path, config: Mapping[str, Any]) -> Path:
    """Write a proxy config as YAML; returns the path."""
    path = Path(path)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the proxy binds it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LiteLLMProxy:
    """The LiteLLM proxy as a subprocess on 127.0.0.1: `with LiteLLMProxy(cfg) as proxy: proxy.url`.

    The port stays the same across `restart()`, so clients keep their base URL. The process never
    fetches model prices from the web (LITELLM_LOCAL_MODEL_COST_MAP=True).
    """

    def __init__(
        self,
        config_path: str | Path,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 120.0,
    ) -> None:
        script = find_litellm(bin_dir=bin_dir)
        if script is None:
            raise LiteLLMNotInstalledError(
                f"litellm {LITELLM_VERSION} is not installed in {bin_dir or venv_dir() / 'bin'}: run hack/litellm.sh"
            )
        self.config_path = Path(config_path)
        self._script = script
        self._host = host
        self._port = port or free_port(host)
        self._env = dict(env or {})
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        log = tempfile.NamedTemporaryFile(prefix="assay-litellm-", suffix=".log", delete=False)  # noqa: SIM115
        log.close()
        self.log_path = Path(log.name)

    @property
    def url(self) -> str:
        """The proxy's root URL; OpenAI clients use it as base URL (the proxy also serves /v1)."""
        return f"http://{self._host}:{self._port}"

    @property
    def master_key(self) -> str | None:
        """The master key the proxy runs with: from the config file, else from LITELLM_MASTER_KEY."""
        config = yaml.safe_load(self.config_path.read_text()) or {}
        key = (config.get("general_settings") or {}).get("master_key")
        if isinstance(key, str) and key.startswith("os.environ/"):
            key = {**os.environ, **self._env}.get(key.removeprefix("os.environ/"))
        return key or {**os.environ, **self._env}.get("LITELLM_MASTER_KEY")

    @property
    def headers(self) -> dict[str, str]:
        """Request headers that authenticate as the master key (admin and model routes alike)."""
        key = self.master_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the proxy and wait until it answers its liveness probe; returns the URL."""
        if self.running:
            return self.url
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", **self._env}
        command = [
            str(self._script),
            "--config",
            str(self.config_path),
            "--host",
            self._host,
            "--port",
            str(self._port),
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    code = None if self._process is None else self._process.returncode
                    self._process = None
                    raise LiteLLMStartError(f"litellm exited with code {code} during startup; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + READINESS_PATH).status_code == 200:
                        return
                time.sleep(0.2)
        self.stop()
        raise LiteLLMStartError(
            f"litellm did not answer {READINESS_PATH} within {self._startup_timeout_s:g} s; see {self.log_path}"
        )

    def stop(self, *, grace_s: float = 10.0) -> None:
        """Stop the proxy: SIGTERM, then SIGKILL after `grace_s`. Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # The proxy runs in its own session; signal its process group so uvicorn workers stop with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=grace_s)

    def restart(self) -> str:
        """Stop and start again on the same port: how a config edit takes effect."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

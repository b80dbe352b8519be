"""Prometheus and Alertmanager as processes on 127.0.0.1, for the drift loop with real parts.

The binaries are Debian's `prometheus` and `prometheus-alertmanager` (hack/debian-packages.sh installs them);
ASSAY_PROMETHEUS and ASSAY_ALERTMANAGER point at others. Configs are built as plain data by the functions
below and written into a work directory with each process's data and log. Both bind loopback only;
Alertmanager runs without clustering. Readiness is each server's own `/-/ready`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from assaylab import controlplane

PROMETHEUS_ENV = "ASSAY_PROMETHEUS"
ALERTMANAGER_ENV = "ASSAY_ALERTMANAGER"
READY_PATH = "/-/ready"


class MonitoringStartError(RuntimeError):
    """A Prometheus or Alertmanager process exited or did not become ready; the message names its log file."""


class MonitoringQueryError(RuntimeError):
    """Prometheus answered a query with an error; the message carries the query and Prometheus' reason."""


def find_prometheus() -> str | None:
    """The Prometheus server binary: $ASSAY_PROMETHEUS, else `prometheus` on PATH, else None."""
    return os.environ.get(PROMETHEUS_ENV) or shutil.which("prometheus")


def find_alertmanager() -> str | None:
    """The Alertmanager binary: $ASSAY_ALERTMANAGER, else Debian's `prometheus-alertmanager`, else `alertmanager`."""
    return os.environ.get(ALERTMANAGER_ENV) or shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


# --- configs (pure) -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint Prometheus scrapes: a job name, `host:port`, the metrics path and labels added to every
    series (what Kubernetes service discovery adds in a cluster, `namespace` for instance)."""

    job: str
    address: str
    path: str = "/metrics"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


def prometheus_config(targets: Sequence[ScrapeTarget], *, alertmanager: str, interval_s: float = 1.0) -> dict[str, Any]:
    """A Prometheus config that scrapes `targets` and evaluates rules every `interval_s` seconds and sends
    alerts to the Alertmanager at `alertmanager` (`host:port`). Rule files are added by `Prometheus`."""
    interval = f"{int(interval_s * 1000)}ms"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "alerting": {"alertmanagers": [{"api_version": "v2", "static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": target.job,
                "metrics_path": target.path,
                "static_configs": [{"targets": [target.address], "labels": dict(target.labels)}],
            }
            for target in targets
        ],
    }


def alertmanager_config(
    webhook_url: str,
    *,
    token: str,
    group_by: Sequence[str] = ("alertname", "namespace", "route"),
    receiver: str = "assay",
) -> dict[str, Any]:
    """An Alertmanager config that sends every alert at once to one webhook with a bearer token.

    group_wait 0s delivers a new group immediately; group_interval 1s delivers changes (a resolve) a second
    later; a firing group is re-sent hourly (assay ignores the re-sends as duplicates anyway).
    """
    return {
        "route": {
            "receiver": receiver,
            "group_by": list(group_by),
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": receiver,
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


# --- processes ----------------------------------------------------------------------------------------------


class _Server:
    """A monitoring server as a subprocess on 127.0.0.1, its config, data and log in the work directory."""

    name = "server"
    package = "the package"  # what to install when the binary is missing
    binary_env = ""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        workdir: pathlib.Path,
        binary: str | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        found = binary or self._find()
        if found is None:
            raise FileNotFoundError(f"no {self.name} binary: install {self.package} or set {self.binary_env}")
        self.binary = found
        self.config = dict(config)
        self.workdir = workdir
        self.config_path = workdir / f"{self.name}.yml"
        self.data_path = workdir / f"{self.name}-data"
        self.log_path = workdir / f"{self.name}.log"
        self.port = controlplane.free_port()
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """`host:port`, as other servers' configs name this one."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @staticmethod
    def _find() -> str | None:
        raise NotImplementedError

    def _arguments(self) -> list[str]:
        """Write the config files and return the command-line flags."""
        raise NotImplementedError

    def sample(self, name: str, **labels: str) -> float:
        """The sum of the server's own metric `name` over the series that carry `labels` (0 when none do)."""
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def start(self) -> Self:
        """Start the process and wait until it answers /-/ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, *self._arguments()], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self._startup_timeout_s
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise MonitoringStartError(f"{self.name} exited with code {code} at startup; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + READY_PATH, timeout=1).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise MonitoringStartError(
                    f"{self.name} not ready within {self._startup_timeout_s:g} s; see {self.log_path}"
                )
            time.sleep(0.1)

    def stop(self, *, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`. Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Alertmanager(_Server):
    """Alertmanager on 127.0.0.1 with clustering off: `with Alertmanager(cfg, workdir=...) as am: am.address`."""

    name = "alertmanager"
    package = "prometheus-alertmanager"
    binary_env = ALERTMANAGER_ENV
    _find = staticmethod(find_alertmanager)

    def _arguments(self) -> list[str]:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return [
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_path}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
        ]


class Prometheus(_Server):
    """Prometheus on 127.0.0.1 with its TSDB in the work directory and `rule_groups` as its one rule file."""

    name = "prometheus"
    package = "prometheus"
    binary_env = PROMETHEUS_ENV
    _find = staticmethod(find_prometheus)

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        workdir: pathlib.Path,
        rule_groups: Sequence[Mapping[str, Any]] = (),
        binary: str | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(config, workdir=workdir, binary=binary, startup_timeout_s=startup_timeout_s)
        self.rules_path = workdir / "rules.yml"
        self.rule_groups = [dict(group) for group in rule_groups]

    def _arguments(self) -> list[str]:
        self.rules_path.write_text(yaml.safe_dump({"groups": self.rule_groups}, sort_keys=False))
        config = {**self.config, "rule_files": [str(self.rules_path)]}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_path}",
            f"--web.listen-address={self.address}",
        ]

    def reload_rules(self, rule_groups: Sequence[Mapping[str, Any]], *, timeout_s: float = 30.0) -> None:
        """Replace the rule file with `rule_groups` and SIGHUP Prometheus (its documented reload), then wait until
        every group is loaded."""
        self.rule_groups = [dict(group) for group in rule_groups]
        self.rules_path.write_text(yaml.safe_dump({"groups": self.rule_groups}, sort_keys=False))
        if self._process is None:
            raise MonitoringStartError("prometheus is not running")
        self._process.send_signal(signal.SIGHUP)
        names = {str(group["name"]) for group in rule_groups}
        deadline = time.monotonic() + timeout_s
        while not names <= {group["name"] for group in self._api("rules")["groups"]}:
            if time.monotonic() > deadline:
                raise MonitoringQueryError(
                    f"prometheus did not load the rule groups {sorted(names)} in {timeout_s:.0f} s"
                )
            time.sleep(0.2)

    def _api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=dict(params or {}), timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise MonitoringQueryError(f"prometheus {path} {dict(params or {})}: {body.get('error', response.text)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: a list of {metric: labels, value | values}."""
        result: list[dict[str, Any]] = self._api("query", {"query": expr})["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts the rules currently hold, pending or firing, with labels, state and activeAt."""
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def target_health(self, job: str) -> str | None:
        """The last scrape's health of the job's target ('up', 'down', 'unknown'), None when it has none."""
        for target in self._api("targets", {"state": "active"})["activeTargets"]:
            if target["labels"].get("job") == job:
                return str(target["health"])
        return None

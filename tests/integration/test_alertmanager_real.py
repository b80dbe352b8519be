"""A real Alertmanager (Debian's prometheus-alertmanager) delivers its webhook to assay's receiver.

Skipped when the binary is missing (under CI a failure: tests/realparts.py): `hack/debian-packages.sh` installs
it (or point ASSAY_ALERTMANAGER at an `alertmanager` binary). Alertmanager binds 127.0.0.1 only, clustering off.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import pathlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import prometheus_client
import pytest
import yaml

import realparts
from assay.alerts import matching, payload, server

BINARY = os.environ.get("ASSAY_ALERTMANAGER") or shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = realparts.needs(
    "Alertmanager", BINARY, "run hack/debian-packages.sh as root (prometheus-alertmanager), or set ASSAY_ALERTMANAGER"
)

TOKEN = "alertmanager-shared-token"
DRIFT = {"alertname": "JudgeDrift", "namespace": "team-a", "route": "support-summary", "severity": "page"}


class Operator:
    """The operator's side of the webhook: one RoutePolicy, and the rollbacks asked for."""

    def __init__(self) -> None:
        self.matches: list[matching.Match] = []
        self.called_at: list[float] = []
        self.called = asyncio.Event()

    async def list_policies(self) -> list[dict[str, Any]]:
        selector = {"matchLabels": {"alertname": "JudgeDrift", "route": "support-summary"}}
        return [
            {
                "metadata": {"namespace": "team-a", "name": "support-summary", "uid": "uid-support-summary"},
                "spec": {"rollback": {"alertSelector": selector}},
            }
        ]

    async def on_matches(self, matches: list[matching.Match], received_at: float) -> Any:
        self.matches.extend(matches)
        self.called_at.append(time.monotonic())
        self.called.set()
        return server_answer(restored=[f"{m.namespace}/{m.name}" for m in matches])


class server_answer:  # lower case: it reads as the value it builds
    """What the operator's side answers: every matched policy restored."""

    def __init__(self, *, restored: list[str]) -> None:
        self.restored, self.already, self.duplicate, self.failed = restored, 0, 0, []


@pytest.fixture
def operator() -> Operator:
    return Operator()


@pytest.fixture
async def webhook_port(operator: Operator) -> AsyncIterator[int]:
    app = server.make_app(token=TOKEN, list_policies=operator.list_policies, on_matches=operator.on_matches)
    runner = await server.serve(app, host="127.0.0.1", port=0)
    try:
        yield server.bound_port(runner)
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(webhook_url: str) -> dict[str, Any]:
    def receiver(name: str, credentials: str) -> dict[str, Any]:
        return {
            "name": name,
            "webhook_configs": [
                {
                    "url": webhook_url,
                    "send_resolved": True,
                    "http_config": {"authorization": {"type": "Bearer", "credentials": credentials}},
                }
            ],
        }

    return {
        "route": {
            "receiver": "assay",
            "group_by": ["alertname", "namespace"],
            # Deliver at once and re-check every second: the test waits for the first delivery and a resolve.
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [{"matchers": ['sender="impostor"'], "receiver": "impostor"}],
        },
        "receivers": [receiver("assay", TOKEN), receiver("impostor", "not-the-token")],
    }


@pytest.fixture
def alertmanager(tmp_path: pathlib.Path, webhook_port: int) -> Iterator[str]:
    assert BINARY is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(_config(f"http://127.0.0.1:{webhook_port}{server.ALERTS_PATH}")))
    port = _free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"alertmanager exited with {process.returncode}: {(tmp_path / 'alertmanager.log').read_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("alertmanager did not become ready within 15 s")
            time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _count(outcome: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value("assay_alerts_received_total", {"outcome": outcome}) or 0.0


async def _wait_for(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


async def test_alertmanager_delivers_a_firing_alert_that_rolls_back_once(alertmanager: str, operator: Operator):
    starts_at = _now()
    alert = {"labels": DRIFT, "annotations": {"summary": "judge win rate fell"}, "startsAt": starts_at}
    resolved_before = _count("resolved")

    async with httpx.AsyncClient(base_url=alertmanager, timeout=5) as http:
        posted_at = time.monotonic()
        response = await http.post("/api/v2/alerts", json=[alert])
        assert response.status_code == 200, response.text
        await asyncio.wait_for(operator.called.wait(), timeout=15)
        latency = operator.called_at[0] - posted_at

        # Resolving it: Alertmanager sends the resolved alert at the next group_interval; nothing acts on it.
        response = await http.post("/api/v2/alerts", json=[{**alert, "endsAt": _now()}])
        assert response.status_code == 200, response.text
        await _wait_for(lambda: _count("resolved") > resolved_before, timeout=15, what="the resolved delivery")

    assert len(operator.matches) == 1
    found = operator.matches[0]
    assert (found.namespace, found.name, found.alert_name) == ("team-a", "support-summary", "JudgeDrift")
    # Alertmanager's own fingerprint equals the one assay computes for payloads that lack it.
    assert found.fingerprint == payload.labels_fingerprint(DRIFT)
    assert abs(found.starts_at - datetime.datetime.fromisoformat(starts_at)) < datetime.timedelta(milliseconds=1)
    assert latency < 5, f"alert to on_matches took {latency:.3f} s"
    print(f"alertmanager POST -> on_matches: {latency * 1000:.0f} ms")


async def test_alertmanager_with_the_wrong_token_is_refused(alertmanager: str, operator: Operator):
    unauthorized_before = _count("unauthorized")
    impostor = {**DRIFT, "sender": "impostor"}

    async with httpx.AsyncClient(base_url=alertmanager, timeout=5) as http:
        response = await http.post("/api/v2/alerts", json=[{"labels": impostor, "startsAt": _now()}])
        assert response.status_code == 200, response.text
        await _wait_for(lambda: _count("unauthorized") > unauthorized_before, timeout=15, what="the refused delivery")

    assert operator.matches == []

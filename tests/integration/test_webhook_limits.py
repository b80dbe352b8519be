"""The running operator's alert webhook against hostile clients: over TLS from a certificate file, a payload nested
100,000 deep is a 400 naming the body (no 500, no traceback in the log), a body over the 16 MiB limit is a 413
naming the limit in one log line, a client that never finishes its request head is disconnected, plain HTTP is
refused, and the operator goes on answering real deliveries."""

from __future__ import annotations

import pathlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

import realparts
from assay.alerts import transport
from assaylab import controlplane, tls
from assaylab.alertmanager import alert, notification
from assaylab.operator_process import OperatorProcess

TOKEN = "webhook-limits-token"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    made = tls.self_signed(tmp_path_factory.mktemp("webhook-tls"))
    realparts.require("openssl", made, "install openssl (a prerequisite in the README)")
    assert made is not None
    return made


@pytest.fixture(scope="module")
def webhook(kube, tmp_path_factory, certificate) -> Iterator[tuple[str, ssl.SSLContext, pathlib.Path]]:
    cert, key = certificate
    log_dir = tmp_path_factory.mktemp("webhook-operator")
    if any(thread.name == "assay-operator" for thread in threading.enumerate()):
        pytest.skip("an in-process assay operator runs in this session; run this module on its own")
    running = OperatorProcess(
        kube.kubeconfig,
        log_path=log_dir / "operator.log",
        webhook_port=controlplane.free_port(),
        webhook_token=TOKEN,
        extra_env={transport.ENV_TLS_CERT: str(cert), transport.ENV_TLS_KEY: str(key)},
    ).start()
    try:
        yield (
            f"https://127.0.0.1:{running.webhook_port}",
            ssl.create_default_context(cafile=str(cert)),
            running.log_path,
        )
    finally:
        running.stop()


def _post(url: str, trust: ssl.SSLContext, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/alerts",
        content=content,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        verify=trust,
        timeout=30,
    )


def test_a_payload_nested_100000_deep_is_400_and_leaves_no_traceback(webhook):
    url, trust, log = webhook
    response = _post(url, trust, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert response.json() == {"error": "body: JSON nested deeper than 32 levels"}
    assert "Traceback" not in log.read_text()


def test_a_body_over_16_mib_is_413_naming_the_limit_in_one_log_line(webhook):
    url, trust, log = webhook
    logged_before = log.read_text()
    response = _post(url, trust, b'{"version": "4", "alerts": [' + b" " * (16 * 1024 * 1024) + b"]}")
    assert response.status_code == 413
    assert response.json() == {"error": "body: larger than the webhook's limit of 16 MiB (16777216 bytes)"}
    logged = log.read_text()[len(logged_before) :]
    # One message; the operator's root logger has two handlers today (the CLI's and kopf's), each writes it once.
    about_it = {line.partition("Rejected")[2] for line in logged.splitlines() if "16777216" in line}
    assert about_it == {
        " an alert delivery from 127.0.0.1: body: larger than the webhook's limit of 16 MiB (16777216 bytes)"
    }
    assert "Traceback" not in logged


def test_a_client_that_never_finishes_its_request_head_is_disconnected(webhook):
    url, trust, _ = webhook
    port = int(url.rsplit(":", 1)[1])
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"POST /alerts HTTP/1.1\r\nHost: assay\r\n")  # and never the rest
        tls.settimeout(30)
        assert tls.recv(1024) == b""
    assert time.monotonic() - started < 15


def test_plain_http_is_refused(webhook):
    url, _, _ = webhook
    with pytest.raises(httpx.HTTPError):
        httpx.post(url.replace("https://", "http://") + "/alerts", json={}, timeout=5)


def test_after_all_that_a_real_delivery_is_answered(webhook):
    url, trust, log = webhook
    body = notification(alert({"alertname": "Unrelated", "namespace": "nowhere"}))
    response = httpx.post(
        f"{url}/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, verify=trust, timeout=30
    )
    assert response.status_code == 200
    assert response.json()["ignored"]["unmatched"] == 1
    assert "Traceback" not in log.read_text()

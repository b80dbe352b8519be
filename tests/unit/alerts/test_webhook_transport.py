"""The webhook's HTTP layer over real sockets: deep or slow input is answered 400 (or the socket closed) before any
policy is looked at, nothing reaches the log but a line, and the webhook serves TLS from a certificate file."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from alerts_harness import alert, notification

import realparts
from assay.alerts import server, transport
from assaylab import tls

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = transport.Limits(header_timeout=0.3, body_timeout=0.3, max_depth=32)


class Recorder:
    def __init__(self) -> None:
        self.listings = 0

    async def list_policies(self) -> list[dict[str, Any]]:
        self.listings += 1
        return []

    async def on_matches(self, matches: Any, received_at: float) -> Any:
        raise AssertionError("no delivery here should reach the policies")


async def _start(recorder: Recorder, **kwargs: Any) -> tuple[Any, int]:
    app = server.make_app(
        token=TOKEN, list_policies=recorder.list_policies, on_matches=recorder.on_matches, limits=FAST
    )
    runner = await server.serve(app, host="127.0.0.1", port=0, **kwargs)
    return runner, server.bound_port(runner)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Recorder, int]]:
    recorder = Recorder()
    runner, port = await _start(recorder)
    try:
        yield recorder, port
    finally:
        await runner.cleanup()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
async def test_deeply_nested_json_is_400_naming_the_body_with_no_traceback(webhook, caplog, depth):
    recorder, port = webhook
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}/alerts", content=_nested(depth), headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": "body: JSON nested deeper than 32 levels"}
    assert recorder.listings == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_payload_nested_as_alertmanager_nests_it_is_read(webhook):
    recorder, port = webhook
    body = notification(alert({"alertname": "JudgeDrift", "namespace": "team-a"}))
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}/alerts", json=body, headers=AUTH)
    assert response.status_code == 200
    assert recorder.listings == 1


async def _read_until_closed(reader: asyncio.StreamReader, *, within: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout=within)


async def test_a_client_that_never_finishes_its_headers_is_disconnected(webhook):
    _, port = webhook
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /alerts HTTP/1.1\r\nHost: x\r\n")  # and then nothing
    await writer.drain()
    assert await _read_until_closed(reader, within=3) == b""
    writer.close()


async def test_a_connection_that_sends_nothing_is_disconnected(webhook):
    _, port = webhook
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _read_until_closed(reader, within=3) == b""
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_400(webhook):
    recorder, port = webhook
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"version"'
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), timeout=3)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body) == {"error": "body: not received within 0.3 s"}
    assert recorder.listings == 0
    writer.close()


async def test_an_idle_kept_alive_connection_is_closed_but_an_answered_one_was_served(webhook):
    _, port = webhook
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=3)).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(reader.read(), timeout=3)  # the rest of the answer, then the close
    assert reader.at_eof()
    writer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    made = tls.self_signed(tmp_path_factory.mktemp("tls"))
    realparts.require("openssl", made, "install openssl (a prerequisite in the README)")
    assert made is not None
    return made


async def test_webhook_serves_tls_from_the_mounted_certificate_and_refuses_plain_http(certificate):
    cert, key = certificate
    context = transport.tls_context_from_env({transport.ENV_TLS_CERT: str(cert), transport.ENV_TLS_KEY: str(key)})
    runner, port = await _start(Recorder(), ssl_context=context)
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=trusting) as client:
            assert (await client.get(f"https://127.0.0.1:{port}/healthz")).status_code == 200
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await runner.cleanup()


def test_tls_needs_both_the_certificate_and_the_key():
    assert transport.tls_context_from_env({}) is None
    with pytest.raises(SystemExit, match=transport.ENV_TLS_KEY):
        transport.tls_context_from_env({transport.ENV_TLS_CERT: "/tls/tls.crt"})


def _secret_volume(root: pathlib.Path, made: tuple[pathlib.Path, pathlib.Path]) -> tuple[pathlib.Path, pathlib.Path]:
    """A directory laid out as the kubelet lays out a Secret volume: tls.crt and tls.key are symlinks through
    `..data`, which an update points at a new timestamped directory in one rename."""
    version = root / f"..{made[0].parent.name}"
    version.mkdir()
    for source in made:
        (version / source.name).write_bytes(source.read_bytes())
    (root / "..data_tmp").symlink_to(version.name)
    (root / "..data_tmp").rename(root / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    return root / "tls.crt", root / "tls.key"


async def _served_by(port: int, trusted: pathlib.Path) -> bool:
    """Whether a client trusting only `trusted` completes a TLS request to the webhook."""
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(trusted))) as client:
        try:
            return (await client.get(f"https://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx.ConnectError:
            return False


async def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="assay.alerts")
    first, renewed, mismatched = (tmp_path / name for name in ("first", "renewed", "mismatched"))
    for directory in (first, renewed, mismatched):
        directory.mkdir()
        made = tls.self_signed(directory)
        realparts.require("openssl", made, "install openssl (a prerequisite in the README)")
    (mismatched / "tls.key").write_bytes((first / "tls.key").read_bytes())  # not its own key
    volume = tmp_path / "volume"
    volume.mkdir()
    cert, key = _secret_volume(volume, (first / "tls.crt", first / "tls.key"))
    env = {transport.ENV_TLS_CERT: str(cert), transport.ENV_TLS_KEY: str(key)}
    runner, port = await _start(Recorder(), ssl_context=transport.tls_context_from_env(env, recheck=0))
    try:
        assert await _served_by(port, first / "tls.crt")

        _secret_volume(volume, (renewed / "tls.crt", renewed / "tls.key"))
        assert await _served_by(port, renewed / "tls.crt")
        assert not await _served_by(port, first / "tls.crt")

        # A certificate with someone else's key does not load: the renewed one stays, and one line says so.
        _secret_volume(volume, (mismatched / "tls.crt", mismatched / "tls.key"))
        assert await _served_by(port, renewed / "tls.crt")
        assert await _served_by(port, renewed / "tls.crt")
    finally:
        await runner.cleanup()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("certificate changed on disk" in message for message in messages) == 1
    assert sum("Keeping the webhook's current TLS certificate" in message for message in messages) == 1

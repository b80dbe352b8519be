"""The call layer: the priority limit shared by all calls, reading chat completion bodies, and the transport
(errors retried as the one retry policy says, the egress rule on every address dialled)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from assay import egress, httpclient
from assay.evaluator import calls, errors
from assaylab import simulator


def _endpoint(url: str, *, attempts: int = 2) -> calls.ChatEndpoint:
    return calls.ChatEndpoint(
        url,
        role="judge",
        api_key="k",
        limit=calls.PriorityLimit(4),
        policy=httpclient.RetryPolicy(max_attempts=attempts, base_delay=0.01),
        timeout=5.0,
        max_connections=4,
    )


async def test_a_call_returns_the_answer_usage_and_latency():
    world = {"api_key": "k", "models": {"m": {"quality": 1.0, "latency_ms": 20}}}
    async with simulator.SimulatorServer(world) as sim:
        endpoint = _endpoint(sim.base_url)
        try:
            answer = await endpoint.complete("m", [{"role": "user", "content": "Name one planet."}], record_id="r1")
        finally:
            await endpoint.aclose()
    assert answer.text and answer.prompt_tokens and answer.completion_tokens
    assert answer.latency_ms is not None and answer.latency_ms >= 20


async def test_a_refused_connection_is_retried_then_fails_the_call_naming_the_record():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retries: list[str] = []
    endpoint = _endpoint(f"http://127.0.0.1:{port}/v1")
    endpoint._on_retry = lambda attempt, cause: retries.append(cause)
    try:
        with pytest.raises(errors.ModelCallFailed, match="r7"):
            await endpoint.complete("m", [{"role": "user", "content": "hi"}], record_id="r7")
    finally:
        await endpoint.aclose()
    assert len(retries) == 1


async def test_a_loopback_endpoint_is_refused_unless_the_egress_rule_allows_it(monkeypatch):
    monkeypatch.setenv(egress.ENV_ALLOW_LOOPBACK, "false")
    async with simulator.SimulatorServer({"models": {"m": {}}}) as sim:
        for url in (sim.base_url, sim.base_url.replace("127.0.0.1", "localhost")):  # a literal, a resolved name
            endpoint = _endpoint(url)
            try:
                with pytest.raises(egress.EgressDenied, match="loopback"):
                    await endpoint.complete("m", [{"role": "user", "content": "hi"}], record_id="r1")
            finally:
                await endpoint.aclose()
    with pytest.raises(egress.EgressDenied, match="credentials"):
        _endpoint("http://user:pw@models.example/v1")


async def test_priority_limit_admits_the_lowest_position_first():
    limit = calls.PriorityLimit(1)
    admitted: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot(0):
            await release.wait()

    async def waiter(priority: int) -> None:
        async with limit.slot(priority):
            admitted.append(priority)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(waiter(p)) for p in (9, 3, 7, 3, 1)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiters)
    assert admitted == [1, 3, 3, 7, 9]


async def test_a_cancelled_waiter_does_not_leak_its_slot():
    limit = calls.PriorityLimit(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot(0):
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, cancelled, return_exceptions=True)
    async with asyncio.timeout(1):
        async with limit.slot(5):
            pass


def test_completion_body_gives_text_and_usage():
    body = {
        "choices": [{"message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2},
    }
    assert calls.parse_completion(body, latency_ms=12.5) == calls.Completion("Hi", 7, 2, 12.5)


def test_null_content_is_an_empty_answer_and_missing_usage_is_unknown():
    body = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": []}}]}
    assert calls.parse_completion(body, latency_ms=1.0) == calls.Completion("", None, None, 1.0)


def test_content_parts_are_joined():
    body = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    assert calls.parse_completion(body, latency_ms=1.0).text == "ab"  # type: ignore[union-attr]


def test_a_body_that_is_not_a_chat_completion_is_refused():
    assert calls.parse_completion({"error": "nope"}, latency_ms=1.0) is None
    assert calls.parse_completion({"choices": []}, latency_ms=1.0) is None
    assert calls.parse_completion(["x"], latency_ms=1.0) is None

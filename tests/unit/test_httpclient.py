"""The one retry policy: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import random

import httpx
import pytest

from assay import httpclient


def test_retry_after_reads_seconds_dates_millis_and_litellm_renamed_headers():
    assert httpclient.retry_after_seconds(httpx.Headers({"Retry-After": "3"})) == 3
    assert httpclient.retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert httpclient.retry_after_seconds(httpx.Headers({"llm_provider-retry-after": "2"})) == 2
    assert (
        httpclient.retry_after_seconds(
            httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), now=1445412470.0
        )
        == 10
    )
    assert httpclient.retry_after_seconds(httpx.Headers({})) is None
    assert httpclient.retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None


def test_backoff_grows_exponentially_within_bounds():
    policy = httpclient.RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=1.0)
    rng = random.Random(1)
    for attempt in range(1, 10):
        ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
        assert ceiling / 2 <= policy.backoff(attempt, rng=rng) <= ceiling


def _responses(*statuses: int, headers: dict[str, str] | None = None):
    queue = [httpx.Response(s, headers=headers or {}, request=httpx.Request("POST", "http://x")) for s in statuses]

    async def send() -> httpx.Response:
        return queue.pop(0)

    return send


async def test_429_then_success_waits_as_told_by_retry_after():
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    response = await httpclient.send_with_retry(
        _responses(429, 200, headers={"Retry-After": "1.5"}),
        policy=httpclient.RetryPolicy(max_attempts=3),
        what="model call",
        sleep=sleep,
    )
    assert response.status_code == 200
    assert waits == [1.5]


async def test_client_errors_are_not_retried_and_name_the_call():
    async def sleep(seconds: float) -> None:
        raise AssertionError("must not wait")

    with pytest.raises(httpclient.CallFailed, match="judge call: HTTP 401") as caught:
        await httpclient.send_with_retry(
            _responses(401), policy=httpclient.RetryPolicy(), what="judge call", sleep=sleep
        )
    assert caught.value.status == 401 and caught.value.attempts == 1


async def test_gives_up_after_max_attempts_on_server_errors():
    retries: list[int] = []

    async def sleep(seconds: float) -> None:
        return None

    with pytest.raises(httpclient.CallFailed, match="after 3 attempts") as caught:
        await httpclient.send_with_retry(
            _responses(500, 502, 503),
            policy=httpclient.RetryPolicy(max_attempts=3),
            what="model call",
            sleep=sleep,
            on_retry=lambda attempt, cause: retries.append(attempt),
        )
    assert caught.value.status == 503 and retries == [1, 2]


def test_sync_twin_retries_timeouts():
    calls = {"n": 0}

    def send() -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            raise httpx.ReadTimeout("slow")
        return httpx.Response(200, request=httpx.Request("GET", "http://x"))

    response = httpclient.send_with_retry_sync(
        send, policy=httpclient.RetryPolicy(max_attempts=3), what="gateway read", sleep=lambda s: None
    )
    assert response.status_code == 200 and calls["n"] == 3

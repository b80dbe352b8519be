"""The one HTTP client factory and retry policy: every outbound call assay makes (models, judge, gateway admin
APIs, dataset URLs) goes through here, so timeouts, retries, backoff and the egress rule (assay.egress) behave
the same everywhere."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import httpx

from assay import egress

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class CallFailed(Exception):
    """A call failed after its last attempt, or with an answer retrying cannot fix (e.g. 400, 401, 404)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in each wait.

    A Retry-After header (seconds or an HTTP date) from a 429 or 503 is honoured, capped at max_delay.
    """

    max_attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 20.0

    def backoff(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The server's requested wait in seconds, or None if absent or unreadable.

    Reads Retry-After (seconds or an HTTP date) and retry-after-ms, and the same headers as LiteLLM passes
    them on from the provider behind it (`llm_provider-retry-after`, `llm_provider-retry-after-ms`).
    """
    for prefix in ("", "llm_provider-"):
        millis = headers.get(f"{prefix}retry-after-ms")
        if millis is not None:
            try:
                return max(0.0, float(millis) / 1000)
            except ValueError:
                pass
        value = headers.get(f"{prefix}retry-after")
        if value is None:
            continue
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return None


def make_async_client(
    *,
    base_url: str = "",
    bearer_token: str | None = None,
    timeout: float = 60.0,
    max_connections: int = 100,
    headers: Mapping[str, str] | None = None,
    policy: egress.EgressPolicy | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient with assay's defaults: explicit timeouts, a bounded pool, a bearer token if given, and the
    egress rule (`policy`, default: the environment's): a refused URL or address raises egress.EgressDenied."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    async def check(request: httpx.Request) -> None:
        egress.check_url(request.url)

    return httpx.AsyncClient(
        base_url=base_url,
        headers=_headers(bearer_token, headers),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=egress.async_transport(policy or egress.current_policy(), limits=limits),
        event_hooks={"request": [check]},
    )


def make_aiohttp_session(
    *,
    bearer_token: str | None = None,
    timeout: float = 60.0,
    max_connections: int = 100,
    policy: egress.EgressPolicy | None = None,
) -> aiohttp.ClientSession:
    """make_async_client for the evaluator's model calls, where the client's CPU per call bounds a pod's
    throughput (httpx costs about six times aiohttp's per call). The same timeouts, pool bound, bearer token
    and egress rule (every address dialled is checked); no proxies from the environment. Check the URL with
    egress.check_url before sending; redirects are not followed (pass allow_redirects=False)."""
    connector = egress.CheckedConnector(policy or egress.current_policy(), limit=max_connections, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector,
        headers=_headers(bearer_token, None),
        timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0)),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def make_client(
    *,
    base_url: str = "",
    bearer_token: str | None = None,
    timeout: float = 30.0,
    policy: egress.EgressPolicy | None = None,
) -> httpx.Client:
    """The synchronous twin of make_async_client, for sync code paths (gateway adapters, the CLI)."""

    def check(request: httpx.Request) -> None:
        egress.check_url(request.url)

    return httpx.Client(
        base_url=base_url,
        headers=_headers(bearer_token, None),
        timeout=httpx.Timeout(timeout, connect=10.0),
        transport=egress.sync_transport(policy or egress.current_policy(), limits=httpx.Limits()),
        event_hooks={"request": [check]},
    )


def _headers(bearer_token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": "assay", **(extra or {})}
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return headers


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _outcome(
    result: httpx.Response | BaseException,
    *,
    attempt: int,
    policy: RetryPolicy,
    what: str,
    rng: random.Random | None,
) -> tuple[str, int | None, float]:
    """Why an attempt failed, its status and how long to wait; raises CallFailed when retrying cannot help."""
    if isinstance(result, BaseException):
        return _describe(result), None, policy.backoff(attempt, rng=rng)
    status = result.status_code
    if status not in RETRYABLE_STATUS:
        raise CallFailed(f"{what}: HTTP {status} (not retried)", status=status, attempts=attempt)
    hinted = retry_after_seconds(result.headers) if status in (429, 503) else None
    wait = min(policy.max_delay, hinted) if hinted is not None else policy.backoff(attempt, rng=rng)
    return f"HTTP {status}", status, wait


_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    policy: RetryPolicy,
    what: str,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_retry: Callable[[int, str], None] | None = None,
) -> httpx.Response:
    """Call `send()` until it returns a non-retryable response, retrying 429, 5xx, timeouts and connection
    errors with backoff. Returns a 2xx response; raises CallFailed with `what` in the message otherwise.
    `on_retry(attempt, cause)` is told about every retry (for counters; never log bodies)."""
    cause, status = "", None
    for attempt in range(1, policy.max_attempts + 1):
        result: httpx.Response | BaseException
        try:
            result = await send()
        except _TRANSIENT as exc:
            result = exc
        if isinstance(result, httpx.Response) and result.is_success:
            return result
        cause, status, wait = _outcome(result, attempt=attempt, policy=policy, what=what, rng=rng)
        if attempt < policy.max_attempts:
            if on_retry:
                on_retry(attempt, cause)
            await sleep(wait)
    raise CallFailed(
        f"{what}: {cause} after {policy.max_attempts} attempts", status=status, attempts=policy.max_attempts
    )


def send_with_retry_sync(
    send: Callable[[], httpx.Response],
    *,
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], Any] = time.sleep,
    on_retry: Callable[[int, str], None] | None = None,
) -> httpx.Response:
    """The synchronous twin of send_with_retry, with the same rules."""
    cause, status = "", None
    for attempt in range(1, policy.max_attempts + 1):
        result: httpx.Response | BaseException
        try:
            result = send()
        except _TRANSIENT as exc:
            result = exc
        if isinstance(result, httpx.Response) and result.is_success:
            return result
        cause, status, wait = _outcome(result, attempt=attempt, policy=policy, what=what, rng=None)
        if attempt < policy.max_attempts:
            if on_retry:
                on_retry(attempt, cause)
            sleep(wait)
    raise CallFailed(
        f"{what}: {cause} after {policy.max_attempts} attempts", status=status, attempts=policy.max_attempts
    )

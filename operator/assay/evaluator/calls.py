"""Chat completion calls to an OpenAI-compatible endpoint, through assay's one retry policy.

Every attempt holds one slot of the pod's call limit (execution.concurrency) only while its request is in
flight, never while it backs off. Latency is the successful attempt's; token usage is what the endpoint
reports. Request and answer text is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import httpx

from assay import egress, httpclient
from assay.evaluator import errors


@dataclasses.dataclass(frozen=True)
class Completion:
    """An answer, its token usage and latency. Replayed answers have no usage and no latency."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None

    def tokens(self) -> dict[str, int | None]:
        return {"prompt": self.prompt_tokens, "completion": self.completion_tokens}


class PriorityLimit:
    """At most `limit` holders at once; waiters are admitted lowest priority first (ties in arrival order).

    The evaluator passes the position as priority, so the oldest pairs finish first and the in-order
    commit frontier keeps moving (a plain FIFO semaphore lets later pairs' calls overtake a pair's judge).
    """

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiters:
            self._free -= 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._arrival), granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # granted just before the cancellation: pass the slot on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_completion(body: Any, *, latency_ms: float) -> Completion | None:
    """The first choice's text and the usage of an OpenAI chat completion body; None if it is not one.

    A null content (a refusal, or tool calls only) is an empty answer, not a failure.
    """
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if content is not None and not isinstance(content, str):
        return None
    usage: Mapping[str, Any] = body["usage"] if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=content or "",
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        latency_ms=latency_ms,
    )


class ChatEndpoint:
    """POST <url>/chat/completions with retries, under a shared limit of concurrent calls.

    `role` ("endpoint" or "judge") names the endpoint in error reasons, e.g. JudgeUnauthorized.
    """

    def __init__(
        self,
        url: str,
        *,
        role: str,
        api_key: str | None,
        limit: PriorityLimit,
        policy: httpclient.RetryPolicy,
        timeout: float,
        max_connections: int,
        on_retry: Callable[[int, str], None] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = f"{url.rstrip('/')}/chat/completions"
        # Sent as the request's `metadata` (LiteLLM keeps it with the call): assay.watch tags its own calls so
        # the gateway's sampler never samples them and spend can tell them apart.
        self._metadata = dict(metadata) if metadata else None
        self.role = role
        self._limit = limit
        self._policy = policy
        self._on_retry = on_retry
        egress.check_url(httpx.URL(self.url))
        self._session = httpclient.make_aiohttp_session(
            bearer_token=api_key, timeout=timeout, max_connections=max_connections
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def _post(self, payload: Mapping[str, Any]) -> httpx.Response:
        """The answer as an httpx.Response, so the one retry policy reads it; transport errors as httpx's."""
        try:
            async with self._session.post(self.url, json=payload, allow_redirects=False) as response:
                content = await response.read()
                return httpx.Response(response.status, headers=response.raw_headers, content=content)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer within {self._session.timeout.total} s") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise httpx.NetworkError(str(exc) or type(exc).__name__) from exc

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], *, record_id: str, priority: int = 0
    ) -> Completion:
        """The model's answer to the messages; raises CallRejected or ModelCallFailed (both name the record)."""
        what = f"{self.role} call to model {model!r} for record {record_id!r}"
        payload: dict[str, Any] = {"model": model, "messages": list(messages)}
        if self._metadata is not None:
            payload["metadata"] = self._metadata
        latency_ms = 0.0

        async def send() -> httpx.Response:
            nonlocal latency_ms
            async with self._limit.slot(priority):
                started = time.perf_counter()
                response = await self._post(payload)
                latency_ms = (time.perf_counter() - started) * 1000
                return response

        try:
            response = await httpclient.send_with_retry(send, policy=self._policy, what=what, on_retry=self._on_retry)
        except httpclient.CallFailed as exc:
            raise self._error(exc, what=what) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        completion = parse_completion(body, latency_ms=round(latency_ms, 1))
        if completion is None:
            raise errors.ModelCallFailed(
                f"{what}: {self.url} answered HTTP {response.status_code} without a chat completion body",
                reason="MalformedResponse",
            )
        return completion

    def _error(self, exc: httpclient.CallFailed, *, what: str) -> errors.EvaluatorError:
        prefix = self.role.capitalize()
        if exc.status == 401:
            return errors.CallRejected(
                f"{what}: HTTP 401 from {self.url}; check the API key Secret of the {self.role}",
                reason=f"{prefix}Unauthorized",
            )
        if exc.status == 403:
            return errors.CallRejected(
                f"{what}: HTTP 403 from {self.url}; the API key may not use this model", reason=f"{prefix}Forbidden"
            )
        if exc.status == 404:
            return errors.CallRejected(
                f"{what}: HTTP 404 from {self.url}; check the model name and the endpoint URL",
                reason="ModelNotFound",
            )
        if exc.status is not None and exc.status not in httpclient.RETRYABLE_STATUS:
            return errors.CallRejected(
                f"{what}: HTTP {exc.status} from {self.url} (not retried); the record may exceed the model's limits",
                reason="RequestRejected",
            )
        return errors.ModelCallFailed(f"{exc}; the Job will retry and resume", reason="ModelCallFailed")

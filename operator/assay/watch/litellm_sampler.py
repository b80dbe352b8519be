"""The LiteLLM side of assay's live quality watch: a logging callback that sends a share of the requests the
promoted arm served, with the answer that was served, to assay's recorder.

It runs inside the LiteLLM proxy, not in assay: it imports nothing of assay and only the standard library and
httpx (a LiteLLM dependency). Install it by putting this file beside LiteLLM's config.yaml as `assay_sampler.py`
and adding it to the callbacks (LiteLLM loads `<file>.<instance>` from the config file's directory):

    litellm_settings:
      callbacks: ["prometheus", "assay_sampler.sampler"]

with ASSAY_RECORDER_URL (e.g. https://assay-webhook.assay-system.svc:8443) and the recorder's bearer token in
ASSAY_RECORDER_TOKEN (or a file named by ASSAY_RECORDER_TOKEN_FILE, e.g. a mounted Secret) in LiteLLM's
environment.

What to sample comes from the recorder (`GET /v1/sampling`, refreshed every ASSAY_SAMPLER_REFRESH_SECONDS,
default 15): for each watched route, the model group of its promoted arm and the sample rate. A request is a
candidate for sampling when the application asked for the route (the alias) and the promoted arm served it.
Requests assay itself makes (baseline replays, judge calls) carry the `assay-watch` tag and are never sampled.
Delivery is fire-and-forget with a short timeout: the sampler never delays or fails the application's request.
Prompt and answer text is sent to the recorder only, and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx

try:
    from litellm.integrations.custom_logger import CustomLogger
except ImportError:  # outside the LiteLLM proxy (assay's own tests): the hooks are plain methods

    class CustomLogger:  # type: ignore[no-redef]
        pass


SAMPLING_PATH = "/v1/sampling"
SAMPLES_PATH = "/v1/samples"
# Requests carrying this tag (metadata.tags, or LiteLLM's request tags) are assay's own: never sampled.
ASSAY_TAG = "assay-watch"
DELIVERY_TIMEOUT_SECONDS = 5.0

logger = logging.getLogger("assay.sampler")


def _token() -> str:
    path = os.environ.get("ASSAY_RECORDER_TOKEN_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError:
            return ""
    return os.environ.get("ASSAY_RECORDER_TOKEN", "").strip()


def _metadata(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = kwargs.get("litellm_params") or {}
    metadata = params.get("metadata") if isinstance(params, Mapping) else None
    return dict(metadata) if isinstance(metadata, Mapping) else {}


def tags_of(kwargs: Mapping[str, Any]) -> set[str]:
    """Every tag the request carried: in its metadata, in LiteLLM's requester metadata, and its request tags."""
    metadata = _metadata(kwargs)
    found: set[str] = set()
    for source in (metadata, metadata.get("requester_metadata") or {}):
        tags = source.get("tags") if isinstance(source, Mapping) else None
        if isinstance(tags, list):
            found.update(str(t) for t in tags)
    logged = kwargs.get("standard_logging_object") or {}
    request_tags = logged.get("request_tags") if isinstance(logged, Mapping) else None
    if isinstance(request_tags, list):
        found.update(str(t) for t in request_tags)
    return found


def served(kwargs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(the model the application asked for, the model group that served it) of a logged call.

    As LiteLLM 1.108.7 logs a request for an alias of `router_settings.model_group_alias` (checked against the
    real proxy): metadata.model_group and model_group_alias are the alias asked for, deployment_model_name the
    model_list entry that served it. Without an alias both are the model group asked for.
    """
    metadata = _metadata(kwargs)
    logged = kwargs.get("standard_logging_object") or {}
    logged = logged if isinstance(logged, Mapping) else {}
    proxy_request = kwargs.get("proxy_server_request") or {}
    body = proxy_request.get("body") if isinstance(proxy_request, Mapping) else None
    asked = body.get("model") if isinstance(body, Mapping) else None
    requested = (
        metadata.get("model_group_alias")
        or (asked if isinstance(asked, str) else None)
        or metadata.get("model_group")
        or logged.get("model_group")
    )
    group = metadata.get("deployment_model_name") or metadata.get("model_group") or logged.get("model_group")
    return (str(requested) if requested else None), (str(group) if group else None)


def answer_text(response: Any) -> str | None:
    """The first choice's text of a chat completion (a LiteLLM ModelResponse or its dict form)."""
    if hasattr(response, "model_dump"):
        response = response.model_dump()
    if not isinstance(response, Mapping):
        return None
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    return content if isinstance(content, str) else None


def usage_of(response: Any) -> dict[str, int]:
    if hasattr(response, "model_dump"):
        response = response.model_dump()
    usage = response.get("usage") if isinstance(response, Mapping) else None
    if not isinstance(usage, Mapping):
        return {}
    return {k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens") if isinstance(usage.get(k), int)}


class Sampler(CustomLogger):
    """Samples the promoted arms' traffic for assay (module docstring). `rng` and `clock` are for tests."""

    def __init__(
        self,
        *,
        recorder_url: str | None = None,
        token: str | None = None,
        refresh_seconds: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._url = (recorder_url or os.environ.get("ASSAY_RECORDER_URL", "")).rstrip("/")
        self._token = token
        self._refresh = refresh_seconds or float(os.environ.get("ASSAY_SAMPLER_REFRESH_SECONDS", "15"))
        self._rng = rng or random.Random()
        self._routes: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token if self._token is not None else _token()}"}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False)
        return self._client

    async def routes(self) -> dict[str, dict[str, Any]]:
        """The watched routes by alias: {"group": <promoted arm>, "rate": <share>, "policy": <ns/name>}. Kept
        from the last successful read when the recorder cannot be reached."""
        if not self._url or time.monotonic() - self._fetched_at < self._refresh:
            return self._routes
        self._fetched_at = time.monotonic()
        try:
            response = await self._http().get(self._url + SAMPLING_PATH, headers=self._headers())
            if response.status_code == 200:
                body = response.json()
                routes = body.get("routes") if isinstance(body, Mapping) else None
                if isinstance(routes, Mapping):
                    self._routes = {str(k): dict(v) for k, v in routes.items() if isinstance(v, Mapping)}
            else:
                logger.warning("assay sampler: %s answered HTTP %d", SAMPLING_PATH, response.status_code)
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("assay sampler: cannot read %s: %s", SAMPLING_PATH, type(exc).__name__)
        return self._routes

    async def choose(self, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The watched route this call is a sample of, or None (not the promoted arm, assay's own, not drawn)."""
        if ASSAY_TAG in tags_of(kwargs):
            return None
        requested, group = served(kwargs)
        route = (await self.routes()).get(requested or "")
        if route is None or group != route.get("group"):
            return None
        rate = float(route.get("rate") or 0.0)
        return route if self._rng.random() < rate else None

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            route = await self.choose(kwargs)
            text = answer_text(response_obj) if route is not None else None
            if route is None or text is None:
                return
            messages = kwargs.get("messages")
            sample = {
                "policy": route.get("policy"),
                "route": served(kwargs)[0],
                "group": route.get("group"),
                "messages": messages if isinstance(messages, list) else [],
                "response": text,
                "usage": usage_of(response_obj),
            }
            task = asyncio.get_running_loop().create_task(self._deliver(sample))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception as exc:  # a sampler must never fail the application's request
            logger.warning("assay sampler: skipped a sample: %s", type(exc).__name__)

    async def _deliver(self, sample: Mapping[str, Any]) -> None:
        try:
            response = await self._http().post(self._url + SAMPLES_PATH, json=sample, headers=self._headers())
        except httpx.HTTPError as exc:
            self.failed += 1
            logger.warning("assay sampler: delivery failed: %s", type(exc).__name__)
            return
        if response.status_code >= 300:
            self.failed += 1
            logger.warning("assay sampler: recorder answered HTTP %d", response.status_code)
        else:
            self.sent += 1


sampler = Sampler()

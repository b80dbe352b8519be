"""The recorder: where a gateway's sampler delivers live samples, on the operator's webhook server.

- `GET /v1/sampling` (bearer token): `{"routes": {<route>: {"group", "rate", "policy"}}}`, what to sample.
- `POST /v1/samples` (bearer token): one sample `{"policy": "<ns>/<name>", "group", "messages", "response",
  "usage"?}`; 202 `{"outcome": "queued" | "ignored"}`, 429 when the queue is full (the sampler drops it: a
  sample is never worth backpressure on live traffic), 400 naming the field, 401, 413.

The text is handed to the watch's queue and kept nowhere else; logs name the policy and the outcome only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from assay.alerts import payload, server, transport
from assay.watch import judging, litellm_sampler

logger = logging.getLogger("assay.recorder")

MAX_SAMPLE_BYTES = 1024 * 1024

Sampling = Callable[[], Mapping[str, Mapping[str, Any]]]
Accept = Callable[[judging.Sample], str]


class SampleError(ValueError):
    """A delivered sample is malformed; the message names the field."""


def parse_sample(body: object) -> judging.Sample:
    """The Sample a delivery carries; raises SampleError naming the field that is wrong."""
    if not isinstance(body, Mapping):
        raise SampleError("body: must be a JSON object")
    policy = body.get("policy")
    if not isinstance(policy, str) or policy.count("/") != 1 or "" in policy.split("/"):
        raise SampleError("policy: must be '<namespace>/<name>'")
    group = body.get("group")
    if not isinstance(group, str) or not group:
        raise SampleError("group: must name the model group that served the request")
    messages = judging.messages_of(body.get("messages"))
    if messages is None:
        raise SampleError("messages: must be a non-empty list of chat messages (role system, user or assistant)")
    response = body.get("response")
    if not isinstance(response, str):
        raise SampleError("response: must be the served answer's text")
    usage = body.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    namespace, name = policy.split("/")
    return judging.Sample(
        namespace=namespace,
        policy=name,
        group=group,
        messages=messages,
        response=response,
        usage={k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)},
    )


def add_routes(
    app: web.Application,
    *,
    token: str,
    sampling: Sampling,
    accept: Accept,
    limits: transport.Limits = transport.DEFAULT_LIMITS,
) -> None:
    """Add the recorder's two paths to `app` (the webhook app: same TLS and header deadline)."""
    token = token.strip()
    if not token:
        raise ValueError("token must not be empty: the recorder would accept anyone's samples")
    expected = f"Bearer {token}".encode()

    unauthorized = {"error": "Authorization: a valid 'Bearer <token>' header is required"}

    def authorized(request: web.Request) -> bool:
        return server.bearer_matches(request.headers.get("Authorization", ""), expected)

    async def routes(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response(unauthorized, status=401)
        return web.json_response({"routes": dict(sampling())})

    async def samples(request: web.Request) -> web.Response:
        if not authorized(request):
            logger.warning("Rejected a sample from %s: missing or wrong bearer token", request.remote)
            return web.json_response(unauthorized, status=401)
        if (request.content_length or 0) > MAX_SAMPLE_BYTES:
            return web.json_response({"error": f"body: larger than {MAX_SAMPLE_BYTES} bytes"}, status=413)
        try:
            sample = parse_sample(await transport.read_json(request, limits))
        except (SampleError, payload.PayloadError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        outcome = accept(sample)
        if outcome == "dropped":
            logger.info("sample for %s/%s dropped: the watch queue is full", sample.namespace, sample.policy)
            return web.json_response({"outcome": outcome}, status=429)
        return web.json_response({"outcome": outcome}, status=202)

    app.router.add_get(litellm_sampler.SAMPLING_PATH, routes)
    app.router.add_post(litellm_sampler.SAMPLES_PATH, samples)

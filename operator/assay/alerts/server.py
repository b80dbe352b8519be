"""The Alertmanager webhook receiver: `POST /alerts` (bearer token) and `GET /healthz`, on aiohttp.

A delivery is answered only after the rollbacks it asks for landed or failed: 200 only when every matched policy
shows its last known good route, 503 otherwise (and before the policy index is warm), which Alertmanager retries;
401, 400 and 413 are not retried by Alertmanager (nothing would change). Logs carry alert names, policy names and
counts; never annotations (free text) and never the token.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from assay import metrics
from assay.alerts import matching, payload, transport

logger = logging.getLogger(__name__)

# Alertmanager puts every alert of a group in one delivery: 10,000 firing alerts are about 5 MB.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
ALERTS_PATH = "/alerts"
HEALTHZ_PATH = "/healthz"
HEADER_DEADLINE = web.AppKey("header_deadline", transport.HeaderDeadline)

ListPolicies = Callable[[], Awaitable[list[dict[str, Any]]]]


class Handled(Protocol):
    """What acting on a delivery's matches did: policy refs restored now, counts already restored or duplicate,
    and the policies not restored yet (the answer is then an error, so Alertmanager retries)."""

    restored: list[str]
    already: int
    duplicate: int
    failed: list[str]


OnMatches = Callable[[list[matching.Match | matching.BudgetMatch], float], Awaitable[Handled]]


def make_app(
    *,
    token: str,
    list_policies: ListPolicies,
    on_matches: OnMatches,
    ready: Callable[[], bool] = lambda: True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limits: transport.Limits = transport.DEFAULT_LIMITS,
) -> web.Application:
    """The webhook app.

    `POST /alerts` with `Authorization: Bearer <token>` and an Alertmanager v4 body answers:
    503 while `ready()` is false (the operator is still listing its policies, or is not the leader), 401 (missing
    or wrong token), 413 `{"error": "body: larger than the webhook's limit of 16 MiB ..."}` (body over
    max_body_bytes; one warning line, nothing else), 400 `{"error": "<field>: ..."}` (not JSON, not a v4 payload),
    503 `{"error": ..., "failed": [...]}` when a matched policy's route is not restored yet (or acting raised),
    or 200 `{"restored": [...], "ignored": {"resolved", "already", "duplicate", "unmatched"}}`.
    `on_matches(matches, received_at)` is awaited before the answer, only when there are matches; `received_at` is
    `time.monotonic()` when the request arrived. De-duplication is on_matches' business (one store, in status).

    `metrics.ALERTS` counts by outcome: matched, resolved, duplicate, unmatched, unauthorized, bad_request,
    not_ready (per delivery), error (per match not restored).
    """
    # A token read from a Secret file often ends in a newline that the sender never sends.
    token = token.strip()
    if not token:
        raise ValueError("token must not be empty: the webhook would accept anyone's alerts")
    expected = f"Bearer {token}".encode()
    too_large = f"body: larger than the webhook's limit of {_size(max_body_bytes)}"

    async def receive(request: web.Request) -> web.Response:
        received_at = time.monotonic()
        if not ready():
            metrics.ALERTS.labels(outcome="not_ready").inc()
            return web.json_response(
                {"error": "the operator is starting (listing its policies); retry shortly"},
                status=503,
                headers={"Retry-After": "1"},
            )
        presented = request.headers.get("Authorization", "")
        if not bearer_matches(presented, expected):
            metrics.ALERTS.labels(outcome="unauthorized").inc()
            logger.warning("Rejected an alert delivery from %s: missing or wrong bearer token", request.remote)
            return web.json_response(
                {"error": "Authorization: a valid 'Bearer <token>' header is required"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="assay-alerts"'},
            )
        try:
            notification = payload.parse(await transport.read_json(request, limits))
        except web.HTTPRequestEntityTooLarge:
            metrics.ALERTS.labels(outcome="bad_request").inc()
            logger.warning("Rejected an alert delivery from %s: %s", request.remote, too_large)
            return web.json_response({"error": too_large}, status=413)
        except payload.PayloadError as exc:
            metrics.ALERTS.labels(outcome="bad_request").inc()
            logger.warning("Rejected an alert delivery: %s", exc)
            return web.json_response({"error": str(exc)}, status=400)

        resolved = sum(1 for alert in notification.alerts if alert.status == "resolved")
        firing = [alert for alert in notification.alerts if alert.status == "firing"]
        budget_alerts = [alert for alert in notification.alerts if matching.is_budget_alert(alert)]
        try:
            # Nothing to match when everything resolved (budget alerts aside): no need to ask the apiserver.
            policies = await list_policies() if firing or budget_alerts else []
        except Exception:
            metrics.ALERTS.labels(outcome="error").inc(len(firing))
            logger.exception("Could not list RoutePolicies for %d firing alerts; Alertmanager will retry", len(firing))
            return web.json_response({"error": "could not list RoutePolicies; retry later"}, status=500)

        matches: list[matching.Match | matching.BudgetMatch] = [
            *matching.match(firing, policies),
            *matching.budget_matches(budget_alerts, policies),
        ]
        matched_fingerprints = {item.fingerprint for item in matches}
        unmatched = sum(1 for alert in firing if alert.fingerprint not in matched_fingerprints)
        if not matches:
            _count(resolved=resolved, unmatched=unmatched)
            return web.json_response(
                {
                    "restored": [],
                    "ignored": {"resolved": resolved, "already": 0, "duplicate": 0, "unmatched": unmatched},
                }
            )
        try:
            handled = await on_matches(matches, received_at)
        except Exception:
            metrics.ALERTS.labels(outcome="error").inc(len(matches))
            logger.exception("Acting on %d matched alerts failed; Alertmanager will retry", len(matches))
            return web.json_response({"error": "rollback failed; retry later"}, status=503)
        _count(matched=len(handled.restored), resolved=resolved, duplicate=handled.duplicate, unmatched=unmatched)
        if handled.failed:
            metrics.ALERTS.labels(outcome="error").inc(len(handled.failed))
            logger.warning(
                "Drift alerts: rollback of %s not restored yet; answering 503 so Alertmanager retries",
                ", ".join(handled.failed),
            )
            return web.json_response(
                {
                    "error": "the route is not restored yet; retry later",
                    "failed": handled.failed,
                    "restored": handled.restored,
                },
                status=503,
            )
        if handled.restored:
            logger.info("Drift alerts restored: %s", ", ".join(handled.restored))
        logger.debug(
            "Alert delivery from receiver %r: %d restored, %d already, %d duplicate, %d resolved, %d unmatched",
            notification.receiver,
            len(handled.restored),
            handled.already,
            handled.duplicate,
            resolved,
            unmatched,
        )
        return web.json_response(
            {
                "restored": handled.restored,
                "ignored": {
                    "resolved": resolved,
                    "already": handled.already,
                    "duplicate": handled.duplicate,
                    "unmatched": unmatched,
                },
            }
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # The HTTP layer's limits (assay.alerts.transport) act before anything above looks at a delivery.
    deadline = transport.HeaderDeadline(limits.header_timeout)
    app = web.Application(client_max_size=max_body_bytes, middlewares=[deadline.middleware])
    app[HEADER_DEADLINE] = deadline
    app.on_cleanup.append(deadline.stop)
    app.router.add_post(ALERTS_PATH, receive)
    app.router.add_get(HEALTHZ_PATH, healthz)
    return app


async def serve(
    app: web.Application, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Start `app` on host:port (0 picks a free port; `bound_port(runner)` tells which), over TLS when
    `ssl_context` is given, and return its runner. A webhook app's header deadline starts watching here.

    Stop it with `await runner.cleanup()`.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if (deadline := app.get(HEADER_DEADLINE)) is not None and runner.server is not None:
        deadline.watch(runner.server)
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port a runner started by `serve` listens on."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the runner listens on no TCP port; was it started with serve()?")


def bearer_matches(presented: str, expected: bytes) -> bool:
    # Constant-time over the whole header, so timing does not reveal how much of the token was right.
    scheme, _, credentials = presented.partition(" ")
    normalized = f"Bearer {credentials.strip()}" if scheme.lower() == "bearer" else presented
    try:
        return hmac.compare_digest(normalized.encode(), expected)
    except UnicodeEncodeError:
        return False


def _size(limit: int) -> str:
    """A byte count as the operator's docs spell it: "16 MiB (16777216 bytes)", or "65 bytes"."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit >= scale and limit % scale == 0:
            return f"{limit // scale} {unit} ({limit} bytes)"
    return f"{limit} bytes"


def _count(**outcomes: int) -> None:
    for outcome, count in outcomes.items():
        if count:
            metrics.ALERTS.labels(outcome=outcome).inc(count)

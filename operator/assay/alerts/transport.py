"""The webhook's HTTP layer, kept apart from what a delivery means (assay.alerts.server): TLS from a mounted
certificate (read again when it is renewed), a deadline for a client to send its request headers, a deadline for
the body, and a depth limit on the JSON (the size limit is aiohttp's client_max_size, which the server answers
with 413). Every limit answers before any policy is looked at.

A connection that has not sent a complete request head within `header_timeout` of opening (or of its last answer,
when kept alive) is closed: a slow client cannot hold sockets. A body not received within `body_timeout`, or
nested deeper than `max_depth`, is a 400 naming `body`: Alertmanager does not retry a 4xx, and nothing reaches
the log but that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from assay.alerts import payload

logger = logging.getLogger(__name__)

ENV_TLS_CERT = "ASSAY_WEBHOOK_TLS_CERT"
ENV_TLS_KEY = "ASSAY_WEBHOOK_TLS_KEY"


@dataclasses.dataclass(frozen=True)
class Limits:
    """How long a client may take and how deep its JSON may nest (an Alertmanager v4 payload nests 4 deep)."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_depth: int = 32


DEFAULT_LIMITS = Limits()


def tls_context_from_env(env: dict[str, str] | None = None, *, recheck: float = 10.0) -> ssl.SSLContext | None:
    """A server TLS context from the certificate and key files the chart mounts from a Secret (tls.crt,
    tls.key), or None when neither is configured. One without the other is a configuration error.

    The files are read again when they change (cert-manager renews the Secret, the kubelet updates the volume in
    place): a handshake at most `recheck` seconds after the change gets the new certificate, no restart needed."""
    env = dict(os.environ) if env is None else env
    cert, key = env.get(ENV_TLS_CERT, ""), env.get(ENV_TLS_KEY, "")
    if not cert and not key:
        return None
    if not (cert and key):
        raise SystemExit(f"the alert webhook's TLS needs both {ENV_TLS_CERT} and {ENV_TLS_KEY}")
    return ServingCertificate(cert, key, recheck=recheck).context


def _server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class ServingCertificate:
    """The webhook's certificate and key files, reloaded when they change on disk.

    `context` is what the server listens with; its SNI hook, run on every client hello, looks at the files (at most
    every `recheck` seconds) and hands the handshake the newest context that loaded. A replacement that does not
    load (a key that does not match, a half-written file) is logged once and the current certificate kept.
    """

    def __init__(
        self, cert: str, key: str, *, recheck: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cert, self.key = cert, key
        self._recheck, self._clock = recheck, clock
        self._stamp = self._stamp_now()
        self._refused: tuple[Any, ...] | None = None
        self._checked = clock()
        self.context = self._current = _server_context(cert, key)
        self.context.sni_callback = self._on_hello

    def current(self) -> ssl.SSLContext:
        """The newest context that loaded, after looking at the files if `recheck` has passed."""
        now = self._clock()
        if now - self._checked >= self._recheck:
            self._checked = now
            self._reload_if_changed()
        return self._current

    def _on_hello(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        newest = self.current()
        if newest is not context:
            connection.context = newest

    def _stamp_now(self) -> tuple[Any, ...]:
        # stat follows the Secret volume's symlinks, so a swapped ..data directory shows as a new inode.
        stamps: list[Any] = []
        for path in (self.cert, self.key):
            try:
                found = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((found.st_ino, found.st_mtime_ns, found.st_size))
        return tuple(stamps)

    def _reload_if_changed(self) -> None:
        stamp = self._stamp_now()
        if stamp == self._stamp or stamp == self._refused:
            return
        try:
            context = _server_context(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            self._refused = stamp
            logger.warning(
                "Keeping the webhook's current TLS certificate: %s or %s does not load (%s)", self.cert, self.key, exc
            )
            return
        self._stamp, self._refused, self._current = stamp, None, context
        logger.info("The webhook's TLS certificate changed on disk; new connections get it (%s)", self.cert)


async def read_json(request: web.Request, limits: Limits) -> Any:
    """The request body as JSON, within the body deadline and the depth limit; raises payload.PayloadError
    (a 400) naming `body` otherwise. aiohttp's client_max_size raises HTTPRequestEntityTooLarge first."""
    try:
        raw = await asyncio.wait_for(request.read(), timeout=limits.body_timeout)
    except TimeoutError:
        raise payload.PayloadError("body", f"not received within {limits.body_timeout:g} s") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise payload.PayloadError("body", f"not valid JSON: {exc.msg} at byte {exc.pos}") from None
    except UnicodeDecodeError as exc:
        raise payload.PayloadError("body", f"not valid JSON: not UTF-8 at byte {exc.start}") from None
    except RecursionError:  # deeper than the interpreter's own limit: certainly deeper than ours
        raise payload.PayloadError("body", f"JSON nested deeper than {limits.max_depth} levels") from None
    if _deeper_than(value, limits.max_depth):
        raise payload.PayloadError("body", f"JSON nested deeper than {limits.max_depth} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class HeaderDeadline:
    """Closes connections that stay without a request in progress for longer than the header timeout.

    aiohttp has no such deadline: a client that opens a socket and sends its headers a byte at a time would hold
    it for ever. The middleware marks a connection busy while its request is handled; a sweeper closes the idle
    ones (a new connection counts as idle from when the sweeper first sees it, at most one sweep late).
    """

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        # id(handler) -> (handler, idle since or None while busy); the handler is kept so its id stays unique.
        self._seen: dict[int, tuple[Any, float | None]] = {}
        self._task: asyncio.Task[None] | None = None

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        connection = request.protocol
        self._seen[id(connection)] = (connection, None)
        try:
            return await handler(request)
        finally:
            self._seen[id(connection)] = (connection, self._clock())

    def watch(self, server: web.Server) -> None:
        """Start sweeping the server's connections (call once, after the runner is set up)."""
        self._task = asyncio.get_running_loop().create_task(self._sweep_forever(server))

    async def stop(self, app: web.Application | None = None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def sweep(self, connections: list[Any]) -> int:
        """Close the connections idle for longer than the timeout; returns how many were closed."""
        now = self._clock()
        current = {id(connection): connection for connection in connections}
        for key in set(self._seen) - set(current):
            del self._seen[key]
        closed = 0
        for key, connection in current.items():
            _, idle_since = self._seen.setdefault(key, (connection, now))
            if idle_since is not None and now - idle_since > self.timeout:
                connection.force_close()
                del self._seen[key]
                closed += 1
        return closed

    async def _sweep_forever(self, server: web.Server) -> None:
        interval = max(0.05, min(1.0, self.timeout / 4))
        while True:
            await asyncio.sleep(interval)
            closed = self.sweep(list(server.connections))
            if closed:
                logger.info("Closed %d webhook connection(s) that sent no request within %g s", closed, self.timeout)

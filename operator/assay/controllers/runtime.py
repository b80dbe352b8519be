"""Running the operator: kopf plus the metrics endpoint (and, when configured, the alert webhook)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from typing import Any

import kopf
import prometheus_client

logger = logging.getLogger("assay.operator")


@dataclasses.dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    liveness_endpoint: str | None = None
    webhook_port: int | None = None
    # In a pod the servers listen on all interfaces; local runs (tests, demo) set ASSAY_BIND_HOST=127.0.0.1.
    bind_host: str = dataclasses.field(default_factory=lambda: os.environ.get("ASSAY_BIND_HOST", "0.0.0.0"))


def _start_metrics(port: int, host: str) -> None:
    if port > 0:
        prometheus_client.start_http_server(port, addr=host)
        logger.info("metrics on :%d/metrics", port)


async def operate(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until the stop flag is set (or forever). Handlers register on import."""
    from assay.controllers import registry  # noqa: F401 - registers the handlers

    _start_metrics(options.metrics_port, options.bind_host)
    webhook = await _start_webhook(options)
    try:
        await _run_kopf(options, stop_flag=stop_flag, ready_flag=ready_flag)
    finally:
        if webhook is not None:
            await webhook.cleanup()


async def _start_webhook(options: OperatorOptions) -> Any:
    """The Alertmanager webhook on options.webhook_port, with the bearer token from ASSAY_WEBHOOK_TOKEN (the
    chart fills it from a Secret). None when no port is configured."""
    if not options.webhook_port:
        return None
    from assay import alerts
    from assay.alerts import transport as alerts_transport
    from assay.controllers import handle_alert

    token = os.environ.get("ASSAY_WEBHOOK_TOKEN", "").strip()
    if not token:
        raise SystemExit("the alert webhook needs ASSAY_WEBHOOK_TOKEN (from a Secret); set it or disable the webhook")
    list_policies, on_matches = handle_alert.callbacks(options.namespaces)
    app = alerts.make_app(token=token, list_policies=list_policies, on_matches=on_matches)
    tls = alerts_transport.tls_context_from_env()  # the chart mounts tls.crt/tls.key from a Secret
    runner = await alerts.serve(app, host=options.bind_host, port=options.webhook_port, ssl_context=tls)
    logger.info("alert webhook on :%d/alerts (%s)", alerts.bound_port(runner), "TLS" if tls else "plain HTTP")
    return runner


async def _run_kopf(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None,
    ready_flag: asyncio.Event | threading.Event | None,
) -> None:
    await kopf.operator(
        standalone=True,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        liveness_endpoint=options.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run(options: OperatorOptions) -> None:
    """The blocking entry point of `assay operator`."""
    kopf.configure(verbose=False)
    asyncio.run(operate(options))

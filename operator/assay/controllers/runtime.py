"""Running the operator: kopf plus the metrics endpoint (and, when configured, the alert webhook)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import kopf
import prometheus_client

logger = logging.getLogger("assay.operator")


@dataclasses.dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    liveness_endpoint: str | None = None
    webhook_port: int | None = None


def _start_metrics(port: int) -> None:
    if port > 0:
        prometheus_client.start_http_server(port, addr="0.0.0.0")
        logger.info("metrics on :%d/metrics", port)


async def operate(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until the stop flag is set (or forever). Handlers register on import."""
    from assay.controllers import registry  # noqa: F401 - registers the handlers

    _start_metrics(options.metrics_port)
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

"""Running the operator: probes, leader election, then kopf, the metrics endpoint and (when configured) the alert
webhook.

Order at start: probes (`/healthz` live at once; `/readyz` only once leading and warm) -> wait for the leader
Lease (when leader election is on) -> the webhook (503 until warm) -> one LIST of RoutePolicies fills the alert
index (warm) -> kopf. Losing the Lease ends the process: it restarts as a standby.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from typing import Any

import kopf
import prometheus_client
from aiohttp import web

from assay import metrics
from assay.spend import prometheus

logger = logging.getLogger("assay.operator")


@dataclasses.dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    health_port: int | None = None
    webhook_port: int | None = None
    # In a pod the servers listen on all interfaces; local runs (tests, demo) set ASSAY_BIND_HOST=127.0.0.1.
    bind_host: str = dataclasses.field(default_factory=lambda: os.environ.get("ASSAY_BIND_HOST", "0.0.0.0"))
    # Where status.spend is read (None: no spend loop), and how often: one batched read for every policy.
    prometheus: prometheus.Settings | None = dataclasses.field(
        default_factory=lambda: prometheus.Settings.from_env(os.environ)
    )
    spend_interval: float = dataclasses.field(
        default_factory=lambda: float(os.environ.get("ASSAY_SPEND_INTERVAL", "300"))
    )


@dataclasses.dataclass
class _State:
    leading: bool = False


def _start_metrics(port: int, host: str) -> None:
    if port > 0:
        prometheus_client.start_http_server(port, addr=host)
        logger.info("metrics on :%d/metrics", port)


async def _start_probes(options: OperatorOptions, state: _State) -> web.AppRunner | None:
    """`/healthz`: the event loop answers. `/readyz`: a standby, or a leader whose alert index is warm (the kubelet's
    readiness: a standby must count as ready or a rolling update never finishes; the webhook Service reaches the
    leader alone through its EndpointSlice). `/leader`: 200 only on the leader once warm."""
    if not options.health_port:
        return None
    from assay import alerts
    from assay.controllers import handle_alert

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leading": state.leading})

    async def readyz(request: web.Request) -> web.Response:
        ready = not state.leading or handle_alert.INDEX.warm()
        return web.json_response({"ready": ready, "leading": state.leading}, status=200 if ready else 503)

    async def leading(request: web.Request) -> web.Response:
        ready = state.leading and handle_alert.INDEX.warm()
        return web.json_response({"leading": state.leading, "warm": ready}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/leader", leading)
    runner = await alerts.serve(app, host=options.bind_host, port=options.health_port)
    logger.info("probes on :%d (/healthz, /readyz, /leader)", options.health_port)
    return runner


async def operate(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until the stop flag is set (or forever). Handlers register on import."""
    from assay.controllers import handle_alert, handle_route, leader, registry  # noqa: F401 - registers handlers

    state = _State()
    _start_metrics(options.metrics_port, options.bind_host)
    probes = await _start_probes(options, state)
    elector = None
    settings = leader.LeaseSettings.from_env()
    if settings is not None:
        elector = leader.Elector(settings)
        await asyncio.to_thread(elector.acquire)
    state.leading = True
    metrics.LEADER.set(1)
    keeper = asyncio.create_task(_keep_leading(elector)) if elector is not None else None
    webhook = await _start_webhook(options)
    endpoint = leader.WebhookEndpoint.from_env(port=options.webhook_port)
    warm = asyncio.create_task(_warm_index(options, endpoint, every=settings.retry if settings else 5.0))
    spend = _start_spend(options)
    try:
        await _run_kopf(options, stop_flag=stop_flag, ready_flag=ready_flag)
    finally:
        if elector is not None:
            elector.stop()  # its renewing thread ends at its next poll, so the loop's executor can shut down
        for task in (keeper, warm, spend):
            if task is not None:
                task.cancel()
        handle_route.route_writer().stop()
        for runner in (webhook, probes):
            if runner is not None:
                await runner.cleanup()
        if elector is not None:
            await asyncio.to_thread(leader.release, elector)


def _start_spend(options: OperatorOptions) -> asyncio.Task[None] | None:
    """The spend loop (assay.controllers.handle_spend) when a Prometheus is configured; on the leader only."""
    if options.prometheus is None:
        return None
    from assay.controllers import handle_spend

    loop = handle_spend.Loop(options.prometheus, interval=options.spend_interval, namespaces=options.namespaces)
    logger.info("spend from Prometheus at %s every %.0fs", options.prometheus.host, options.spend_interval)
    return asyncio.create_task(loop.run(), name="assay-spend")


async def _keep_leading(elector: Any) -> None:
    await asyncio.to_thread(elector.keep)
    if elector.stopping:
        return
    metrics.LEADER.set(0)
    logger.error("leadership lost: exiting so this pod restarts as a standby")
    os._exit(3)  # crash-only: never act next to the new leader, not even for the length of a clean shutdown


async def _warm_index(options: OperatorOptions, endpoint: Any, *, every: float) -> None:
    """One LIST of the watched RoutePolicies into the alert index, retried until it succeeds; then, in a cluster,
    keep the webhook Service's EndpointSlice pointing at this leader."""
    from assay.controllers import handle_alert

    delay = 0.5
    while True:
        try:
            listed = await asyncio.to_thread(handle_alert.list_policies, options.namespaces)
        except Exception as exc:
            logger.warning("listing RoutePolicies for the alert index failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)
            continue
        handle_alert.INDEX.fill(listed)
        logger.info("alert index warm: %d RoutePolicies", len(listed))
        break
    while endpoint is not None:
        await asyncio.to_thread(endpoint.publish)
        await asyncio.sleep(every)


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
    list_policies, on_matches, ready = handle_alert.callbacks(options.namespaces)
    app = alerts.make_app(token=token, list_policies=list_policies, on_matches=on_matches, ready=ready)
    _add_recorder(app)
    tls = alerts_transport.tls_context_from_env()  # the chart mounts tls.crt/tls.key from a Secret
    runner = await alerts.serve(app, host=options.bind_host, port=options.webhook_port, ssl_context=tls)
    logger.info("alert webhook on :%d/alerts (%s)", alerts.bound_port(runner), "TLS" if tls else "plain HTTP")
    return runner


def _add_recorder(app: web.Application) -> None:
    """The live-quality recorder (assay.watch.recorder) on the webhook app, with its own bearer token from
    ASSAY_RECORDER_TOKEN (the sampler in the gateway holds it); absent, no route is watched."""
    token = os.environ.get("ASSAY_RECORDER_TOKEN", "").strip()
    if not token:
        return
    from assay.controllers import handle_watch
    from assay.watch import recorder

    worker = handle_watch.Worker()

    async def start(_: web.Application) -> None:
        worker.start()

    async def stop(_: web.Application) -> None:
        await worker.stop()

    recorder.add_routes(app, token=token, sampling=handle_watch.INDEX.sampling, accept=worker.accept)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    logger.info("live-quality recorder on the webhook port (/v1/sampling, /v1/samples)")


async def _run_kopf(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None,
    ready_flag: asyncio.Event | threading.Event | None,
) -> None:
    # standalone: leadership is assay's own Lease (above), not kopf's peering.
    await kopf.operator(
        standalone=True,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run(options: OperatorOptions) -> None:
    """The blocking entry point of `assay operator`."""
    root = logging.getLogger()
    level, earlier = root.level, list(root.handlers)
    # kopf installs its own root handler (with the object's namespace/name as a prefix) and resets the level:
    # keep its handler alone, so every line is written once, and the level the CLI set (ASSAY_LOG_LEVEL).
    kopf.configure(verbose=False, log_prefix=True)
    for handler in earlier:
        root.removeHandler(handler)
    root.setLevel(level)
    asyncio.run(operate(options))

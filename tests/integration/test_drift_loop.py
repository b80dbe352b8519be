"""The drift loop with real parts, end to end: a promoted candidate starts failing, Prometheus scrapes the
failures from the real LiteLLM proxy, its alert rule fires, Alertmanager delivers the webhook (bearer token)
to the operator, and the operator restores the baseline route; LiteLLM serves the baseline again.

Nothing is hand-posted: the only thing the test does after promoting is make the candidate model fail in
the LLM simulator and send the route's traffic. Skipped when LiteLLM, Prometheus or Alertmanager is
missing (hack/litellm.sh, hack/debian-packages.sh); under CI that fails instead (tests/realparts.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest
from kubernetes import client

import realparts
from assay.alerts import server
from assay.gateways import litellm_config
from assaylab import litellm, monitoring, simulator
from assaylab import stack as local_stack
from conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    pytest.mark.alertmanager,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
    realparts.needs(
        "Prometheus", monitoring.find_prometheus(), "run hack/debian-packages.sh as root, or set ASSAY_PROMETHEUS"
    ),
    realparts.needs(
        "Alertmanager",
        monitoring.find_alertmanager(),
        "run hack/debian-packages.sh as root, or set ASSAY_ALERTMANAGER",
    ),
]

TOKEN = "drift-loop-webhook-token"
ALERT = "LLMRouteQualityDrift"
BASELINE, CANDIDATE = "gpt-4o", "gpt-4o-mini"
# A world without background errors, so the only failures Prometheus sees are the injected drift.
WORLD = {
    "seed": 11,
    "models": {
        BASELINE: {"latency_ms": 20},
        CANDIDATE: {"latency_ms": 10},
        "tiny-llm": {},
        "judge-large": {"role": "judge"},
    },
}
DRIFT_ERROR_RATE = 0.9
# The chart's example rule (charts/assay/templates/prometheusrule.yaml) with a window and threshold sized for
# a test: the share of failed requests per LiteLLM route alias, kept per namespace (the scrape adds it).
WINDOW = "10s"
ERROR_RATIO = 0.5
DRIFT_RULE = {
    "name": "assay.drift-loop",
    "interval": "1s",
    "rules": [
        {
            "alert": ALERT,
            "expr": (
                f"sum by (namespace, requested_model) (rate(litellm_proxy_failed_requests_metric_total[{WINDOW}]))"
                f" / sum by (namespace, requested_model) (rate(litellm_proxy_total_requests_metric_total[{WINDOW}]))"
                f" > {ERROR_RATIO}"
            ),
            "for": "0s",
            "labels": {"severity": "warning", "route": "{{ $labels.requested_model }}"},
            "annotations": {"summary": "Route {{ $labels.requested_model }} fails {{ $value | humanizePercentage }}"},
        }
    ],
}


@contextlib.contextmanager
def running_stack(
    workdir: pathlib.Path, *, namespace: str, token: str, world: dict
) -> Iterator[local_stack.LocalStack]:
    """The local stack (operator with its webhook, simulator, LiteLLM) with a small dataset."""
    with local_stack.LocalStack(
        namespace=namespace, executor=False, webhook_token=token, workdir=workdir, simulator_config=world
    ) as running:
        running.put_dataset("prompts", simulator.make_dataset(20, seed=1))
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.LocalStack]:
    # The workdir is kept by pytest: operator and LiteLLM logs for failures.
    with running_stack(tmp_path_factory.mktemp("stack"), namespace="drift", token=TOKEN, world=WORLD) as running:
        yield running


@dataclasses.dataclass
class Monitoring:
    prometheus: monitoring.Prometheus
    alertmanager: monitoring.Alertmanager


@contextlib.contextmanager
def running_monitoring(
    stack: local_stack.LocalStack, workdir: pathlib.Path, *, token: str, rule_groups: Sequence[dict] = ()
) -> Iterator[Monitoring]:
    """Alertmanager delivering to the operator's webhook, and Prometheus scraping LiteLLM and the operator."""
    webhook = f"http://127.0.0.1:{stack.webhook_port}{server.ALERTS_PATH}"
    with monitoring.Alertmanager(monitoring.alertmanager_config(webhook, token=token), workdir=workdir) as am:
        targets = [
            monitoring.ScrapeTarget(
                "litellm", stack.litellm_url.removeprefix("http://"), "/metrics/", {"namespace": stack.namespace}
            ),
            monitoring.ScrapeTarget("assay", f"127.0.0.1:{stack.operator.metrics_port}"),
        ]
        config = monitoring.prometheus_config(targets, alertmanager=am.address, interval_s=1.0)
        with monitoring.Prometheus(config, workdir=workdir, rule_groups=rule_groups) as prometheus:
            yield Monitoring(prometheus, am)


@pytest.fixture(scope="module")
def monitors(stack: local_stack.LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    with running_monitoring(stack, tmp_path_factory.mktemp("monitoring"), token=TOKEN, rule_groups=[DRIFT_RULE]) as m:
        yield m


def _ask(stack: local_stack.LocalStack, *, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        f"{stack.litellm_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
        json={"model": stack.route, "messages": [{"role": "user", "content": "hello"}]},
        timeout=timeout,
    )


def _served_by(stack: local_stack.LocalStack) -> str | None:
    """The model that answered a request for the route; None while LiteLLM is restarting or failing."""
    try:
        response = _ask(stack)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    return response.headers["x-litellm-model-name"].split("/", 1)[-1]


def _status(stack: local_stack.LocalStack, name: str) -> dict:
    return stack.get("RoutePolicy", name).get("status") or {}


def _condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def _configured_model(stack: local_stack.LocalStack) -> str | None:
    """The model group the route's alias names in the LiteLLM ConfigMap (what the next rollout serves)."""
    cm = client.CoreV1Api(stack.api).read_namespaced_config_map(local_stack.LITELLM_CONFIGMAP, stack.namespace)
    return litellm_config.alias_model(litellm_config.read_alias((cm.data or {})["config.yaml"], stack.route))


@contextlib.contextmanager
def failing(stack: local_stack.LocalStack, model: str, error_rate: float) -> Iterator[None]:
    """The simulator answers `error_rate` of the model's requests with HTTP 500 until the block ends."""
    assert stack.simulator is not None
    served = stack.simulator.server.simulator
    clean = served.config
    models = {**clean.models, model: clean.models[model].model_copy(update={"error_rate": error_rate})}
    served.config = clean.model_copy(update={"models": models})
    try:
        yield
    finally:
        served.config = clean


class Traffic:
    """Applications calling the route through LiteLLM, one request at a time, until stopped or `limit_s`."""

    def __init__(self, stack: local_stack.LocalStack, *, limit_s: float) -> None:
        self.stack = stack
        self.limit_s = limit_s
        self.sent = 0
        self.failed = 0
        self.first_failure_sent_at: float | None = None  # time.monotonic() when the first failing request left
        self.first_failure_wall: float | None = None  # the same moment as Unix time, to compare with Prometheus
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="route-traffic", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent_at, sent_wall = time.monotonic(), time.time()
            try:
                ok = _ask(self.stack, timeout=10).status_code == 200
            except httpx.TransportError:  # LiteLLM restarting after the rollback
                self._stop.wait(0.1)
                continue
            self.sent += 1
            if not ok:
                self.failed += 1
                if self.first_failure_sent_at is None:
                    self.first_failure_sent_at, self.first_failure_wall = sent_at, sent_wall

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _first_firing(prometheus: monitoring.Prometheus, stack: local_stack.LocalStack) -> tuple[dict, float]:
    """The drift alert's labels and the Unix time of the first rule evaluation that found it firing."""
    series = prometheus.query(f'ALERTS{{alertname="{ALERT}", alertstate="firing", route="{stack.route}"}}[5m]')
    assert len(series) == 1, f"one firing drift alert for the route, got {series}"
    return series[0]["metric"], float(series[0]["values"][0][0])


def test_a_real_drift_alert_rolls_the_promoted_route_back(stack: local_stack.LocalStack, monitors: Monitoring):
    prometheus = monitors.prometheus
    stack.create(stack.policy("drift", promotion={"automatic": False}))
    lkg = wait_for(lambda: _status(stack, "drift").get("lastKnownGood"), what="baseline snapshot", timeout=60)
    assert lkg["model"] == BASELINE

    client.CustomObjectsApi(stack.api).patch_namespaced_custom_object(
        local_stack.GROUP,
        local_stack.VERSION,
        stack.namespace,
        "routepolicies",
        "drift",
        {"metadata": {"annotations": {"assay.dev/promote": "mini@1"}}},
    )
    wait_for(lambda: _status(stack, "drift").get("phase") == "Promoted", timeout=60, what="Promoted")
    wait_for(lambda: _served_by(stack) == CANDIDATE, timeout=90, interval=1, what="LiteLLM serving the candidate")
    wait_for(lambda: prometheus.target_health("litellm") == "up", timeout=30, what="Prometheus scraping LiteLLM")
    assert not [a for a in prometheus.alerts() if a["labels"]["alertname"] == ALERT], "no drift before the fault"

    with failing(stack, CANDIDATE, DRIFT_ERROR_RATE), Traffic(stack, limit_s=90) as traffic:
        wait_for(lambda: _configured_model(stack) == BASELINE, timeout=90, interval=0.05, what="route restored")
        restored_at = time.monotonic()
    wait_for(lambda: _served_by(stack) == BASELINE, timeout=90, interval=0.2, what="LiteLLM serving the baseline")
    serving_at = time.monotonic()

    assert traffic.first_failure_sent_at is not None and traffic.first_failure_wall is not None
    assert traffic.failed > 0.5 * traffic.sent, f"{traffic.failed} of {traffic.sent} requests failed"
    rolled = _status(stack, "drift")
    assert rolled["phase"] == "RolledBack"
    assert rolled["activeRoute"]["model"] == BASELINE
    assert rolled["lastKnownGood"] == lkg, "the baseline snapshot is never rewritten"
    assert _condition(rolled, "RolledBack")["status"] == "True"
    assert _condition(rolled, "RolledBack")["reason"] == "DriftAlert"
    assert ALERT in _condition(rolled, "RolledBack")["message"]

    labels, firing_wall = _first_firing(prometheus, stack)
    assert (labels["route"], labels["namespace"]) == (stack.route, stack.namespace)
    # Alertmanager delivered it, with a token the webhook accepted (a refused delivery counts as failed).
    alertmanager = monitors.alertmanager
    assert alertmanager.sample("alertmanager_notifications_total", integration="webhook") >= 1
    assert alertmanager.sample("alertmanager_notifications_failed_total", integration="webhook") == 0
    # The operator's own account, scraped by the same Prometheus: one drift rollback, and how long it took
    # from the webhook delivery to the written route.
    rollbacks = wait_for(
        lambda: prometheus.query('assay_rollbacks_total{reason="alert"}'), timeout=15, what="rollback metric"
    )
    assert float(rollbacks[0]["value"][1]) == 1
    webhook_to_write = float(prometheus.query("assay_alert_to_rollback_seconds_sum")[0]["value"][1])

    fault_to_firing = firing_wall - traffic.first_failure_wall
    fault_to_restored = restored_at - traffic.first_failure_sent_at
    fault_to_serving = serving_at - traffic.first_failure_sent_at
    assert 0 < fault_to_firing < fault_to_restored
    print(
        f"\ndrift loop: {traffic.sent} requests ({traffic.failed} failed); first failing request ->"
        f" alert firing in Prometheus {fault_to_firing:.1f} s -> route restored in the ConfigMap"
        f" {fault_to_restored:.1f} s (firing -> restored {fault_to_restored - fault_to_firing:.2f} s, of which"
        f" webhook -> write {webhook_to_write * 1000:.0f} ms) -> baseline answering {fault_to_serving:.1f} s"
    )

"""Budgets that act, end to end with real parts: a runaway loop (a client bursting requests at a promoted route)
through the real LiteLLM proxy, whose spend counter a real Prometheus scrapes; the burn-rate rule that
`assay budget-rules` renders from the policy's spec.budget fires, a real Alertmanager delivers it (bearer token)
to the operator's webhook, and the operator takes the policy's action, RollBack: the baseline serves again. The
alert then resolves and BudgetExceeded turns False. Nothing is hand-posted.

Skipped when LiteLLM, Prometheus or Alertmanager is missing; under CI that fails instead (tests/realparts.py).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from test_drift_loop import (
    Monitoring,
    _condition,
    _configured_model,
    _served_by,
    _status,
    running_monitoring,
    running_stack,
)

import realparts
from assay.spend import budget_rules, rules_command, sources
from assaylab import litellm, monitoring
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

TOKEN = "budget-loop-webhook-token"
BASELINE, CANDIDATE = "gpt-4o", "gpt-4o-mini"
WORLD = {
    "seed": 12,
    "models": {
        BASELINE: {"latency_ms": 5},
        CANDIDATE: {"latency_ms": 5},
        "tiny-llm": {},
        "judge-large": {"role": "judge"},
    },
}
POLICY = "budget"
# The runaway: BURST_CLIENTS clients in a loop. The floor is FLOOR_RPS requests a second at the candidate's
# measured cost per request: the probes (at most one a second) stay below it, the burst far above.
BURST_CLIENTS = 8
FLOOR_RPS = 2.5
WINDOW, BASELINE_WINDOW, FACTOR = "15s", "2m", 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.LocalStack]:
    with running_stack(tmp_path_factory.mktemp("stack"), namespace="budget", token=TOKEN, world=WORLD) as running:
        yield running


@pytest.fixture(scope="module")
def monitors(stack: local_stack.LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    """Its rule file is empty until the test writes the policy's budget rules into it."""
    with running_monitoring(stack, tmp_path_factory.mktemp("monitoring"), token=TOKEN) as running:
        yield running


def _ask(stack: local_stack.LocalStack, model: str) -> httpx.Response:
    return httpx.post(
        f"{stack.litellm_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
        json={"model": model, "messages": [{"role": "user", "content": "summarize my ticket"}]},
        timeout=30,
    )


def _cost_per_request(stack: local_stack.LocalStack, requests: int = 5) -> float:
    """The candidate model's USD per request as LiteLLM prices it, from its own /metrics (asked by model name,
    not through the route: the route's series stay untouched)."""
    for _ in range(requests):
        assert _ask(stack, CANDIDATE).status_code == 200
    text = httpx.get(f"{stack.litellm_url}/metrics/", timeout=10).text
    spent = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(sources.LITELLM_SPEND + "{") and f'{sources.LITELLM_ROUTE_LABEL}="{CANDIDATE}"' in line
    )
    assert spent > 0, "LiteLLM prices the candidate's answers (its model cost map)"
    return spent / requests


class Burst:
    """BURST_CLIENTS clients calling the route in a loop until stopped: a runaway agent."""

    def __init__(self, stack: local_stack.LocalStack) -> None:
        self.stack = stack
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(BURST_CLIENTS, thread_name_prefix="runaway")

    def _client(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                try:
                    http.post(
                        f"{self.stack.litellm_url}/v1/chat/completions",
                        headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
                        json={"model": self.stack.route, "messages": [{"role": "user", "content": "again"}]},
                    )
                except httpx.TransportError:  # LiteLLM restarting after the rollback
                    self._stop.wait(0.1)
                    continue
                with self._lock:
                    self.sent += 1

    def __enter__(self) -> Burst:
        self.started_at, self.started_wall = time.monotonic(), time.time()
        for _ in range(BURST_CLIENTS):
            self._pool.submit(self._client)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


def _budget_alerts(prometheus: monitoring.Prometheus) -> list[dict]:
    return [a for a in prometheus.alerts() if budget_rules.BUDGET_LABEL in a["labels"]]


def test_a_runaway_loop_trips_the_burn_rate_rule_and_the_operator_rolls_back(
    stack: local_stack.LocalStack, monitors: Monitoring
):
    prometheus = monitors.prometheus
    per_request = _cost_per_request(stack)
    floor_usd_per_hour = FLOOR_RPS * per_request * 3600
    budget = {
        "burnRate": {
            "factor": FACTOR,
            "window": WINDOW,
            "baseline": BASELINE_WINDOW,
            "minUsdPerHour": floor_usd_per_hour,
            "for": "0",
        },
        "action": "RollBack",
    }
    stack.create(stack.policy(POLICY, promotion={"automatic": False}, budget=budget))
    lkg = wait_for(lambda: _status(stack, POLICY).get("lastKnownGood"), what="baseline snapshot", timeout=60)
    assert lkg["model"] == BASELINE

    # The rules exactly as `assay budget-rules` prints them for the applied policy.
    documents, errors = rules_command.render([stack.get("RoutePolicy", POLICY)], fmt="rules")
    assert errors == []
    prometheus.reload_rules(documents[0]["groups"])

    client.CustomObjectsApi(stack.api).patch_namespaced_custom_object(
        local_stack.GROUP,
        local_stack.VERSION,
        stack.namespace,
        "routepolicies",
        POLICY,
        {"metadata": {"annotations": {"assay.dev/promote": "mini@1"}}},
    )
    wait_for(lambda: _status(stack, POLICY).get("phase") == "Promoted", timeout=60, what="Promoted")
    wait_for(lambda: _served_by(stack) == CANDIDATE, timeout=90, interval=1, what="LiteLLM serving the candidate")
    wait_for(lambda: prometheus.target_health("litellm") == "up", timeout=30, what="Prometheus scraping LiteLLM")
    time.sleep(3)  # a few rule evaluations over the quiet route
    assert _budget_alerts(prometheus) == [], "the probes' trickle is no runaway"

    with Burst(stack) as burst:
        wait_for(lambda: _configured_model(stack) == BASELINE, timeout=120, interval=0.05, what="route restored")
        restored_at = time.monotonic()
        # Read while the runaway still runs: once it stops, the alert resolves and the condition turns False.
        rolled = wait_for(
            lambda: (s := _status(stack, POLICY)).get("phase") == "RolledBack" and s,
            timeout=30,
            interval=0.05,
            what="the rollback recorded in status",
        )
    wait_for(lambda: _served_by(stack) == BASELINE, timeout=90, interval=0.2, what="LiteLLM serving the baseline")

    assert rolled["phase"] == "RolledBack" and rolled["activeRoute"]["model"] == BASELINE
    assert rolled["lastKnownGood"] == lkg, "the baseline snapshot is never rewritten"
    assert _condition(rolled, "RolledBack")["reason"] == "BudgetExceeded"
    exceeded = _condition(rolled, "BudgetExceeded")
    assert (exceeded["status"], exceeded["reason"]) == ("True", "BurnRate")
    assert "restoring the last known good route" in exceeded["message"]
    assert rolled["budget"]["lastAction"]["action"] == "RollBack" and not rolled["budget"]["lastAction"]["dryRun"]
    events = client.CoreV1Api(stack.api).list_namespaced_event(
        stack.namespace, field_selector=f"involvedObject.name={POLICY}"
    )
    assert "BudgetExceeded" in {event.reason for event in events.items}

    series = prometheus.query(f'ALERTS{{alertname="{budget_rules.ALERTS["burn-rate"]}", alertstate="firing"}}[5m]')
    assert len(series) == 1 and series[0]["metric"]["routepolicy"] == POLICY
    firing_wall = float(series[0]["values"][0][0])
    actions = wait_for(
        lambda: prometheus.query('assay_budget_actions_total{trigger="BurnRate",action="RollBack"}'),
        timeout=15,
        what="budget action metric",
    )
    assert float(actions[0]["value"][1]) == 1, "one firing, one action (Alertmanager's repeats are duplicates)"
    assert monitors.alertmanager.sample("alertmanager_notifications_failed_total", integration="webhook") == 0

    # The runaway has stopped: the alert resolves, Alertmanager says so, and the condition follows.
    resolved = wait_for(
        lambda: (
            _condition(_status(stack, POLICY), "BudgetExceeded").get("status") == "False" and _status(stack, POLICY)
        ),
        timeout=120,
        interval=0.5,
        what="BudgetExceeded False after the alert resolved",
    )
    assert _condition(resolved, "BudgetExceeded")["reason"] == "WithinBudget"
    assert resolved["budget"].get("firing", []) == []
    assert resolved["phase"] == "RolledBack", "a resolved alert undoes nothing"

    print(
        f"\nbudget loop: {burst.sent} runaway requests at {per_request * 1e6:.1f} micro-USD each; burst start ->"
        f" burn-rate alert firing {firing_wall - burst.started_wall:.1f} s -> route restored in the ConfigMap"
        f" {restored_at - burst.started_at:.1f} s"
    )

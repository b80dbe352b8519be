"""status.spend of a RoutePolicy, end to end with real parts: priced traffic through the real LiteLLM proxy (the
pinned release), its /metrics/ scraped by a real Prometheus, and the operator (in-process, against a real
kube-apiserver) whose spend loop reads it into the policy's status. Calls tagged assay-watch (the watch's own
replays) go to the same route and stay out of its spend. Then Prometheus is stopped: SpendKnown turns False with
the reason and Prometheus's address, and the last good figures stay (never zero spend).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
import yaml
from kubernetes import client

import realparts
from assay import GROUP, VERSION
from assay import kube as assay_kube
from assay.controllers import conditions
from assay.spend import sources
from assaylab import litellm, monitoring
from assaylab import simulator as sim
from conftest import InProcessOperator, wait_for

pytestmark = [
    pytest.mark.litellm,
    pytest.mark.integration,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
    realparts.needs(
        "Prometheus", monitoring.find_prometheus(), "run hack/debian-packages.sh as root, or set ASSAY_PROMETHEUS"
    ),
]

PRICES = {"gpt-4o": (0.0005, 0.0015)}
ROUTE = "support"
APP_REQUESTS, WATCH_REQUESTS = 10, 20
RESOLVED = 4
OUTCOMES = 'tickets_resolved_total{queue="support"}'
SPEND = sources.LITELLM_SPEND
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[litellm.LiteLLMProxy]:
    with sim.BackgroundSimulator({"seed": 5, "models": {model: {} for model in PRICES}}) as simulator:
        config = litellm.build_config(simulator_url=simulator.url, models=PRICES, aliases={ROUTE: "gpt-4o"})
        for entry in config["model_list"]:
            prompt_price, completion_price = PRICES[entry["model_name"]]
            entry["litellm_params"].update(input_cost_per_token=prompt_price, output_cost_per_token=completion_price)
        # What docs/spend.md asks of a LiteLLM whose routes assay watches: the tag becomes the label tag_assay_watch.
        config["litellm_settings"]["custom_prometheus_tags"] = [sources.ASSAY_CALL_TAG]
        path = litellm.write_config(tmp_path_factory.mktemp("litellm") / "config.yaml", config)
        with litellm.LiteLLMProxy(path) as running:
            yield running


def _ask(proxy: litellm.LiteLLMProxy, n: int, *, tags: list[str] | None = None) -> float:
    """One request to the route; the dollars LiteLLM charged for it (its response-cost header)."""
    body: dict[str, Any] = {"model": ROUTE, "messages": [{"role": "user", "content": f"Question {n}: " + "why " * n}]}
    if tags:
        body["metadata"] = {"tags": tags}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=60)
    assert response.status_code == 200, response.text[:200]
    return float(response.headers["x-litellm-response-cost"])


def _spend_of(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(kube.api_client())
    return dict(
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "routepolicies", name).get("status") or {}
    )


def test_the_operator_writes_the_route_spend_without_assay_calls_and_keeps_it_when_prometheus_stops(
    kube, namespace: str, proxy: litellm.LiteLLMProxy, tmp_path: Path
):
    # The application's own outcome counter (tickets resolved), served by prometheus_client as an app would.
    registry = prometheus_client.CollectorRegistry()
    resolved = prometheus_client.Counter("tickets_resolved", "Tickets resolved.", ["queue"], registry=registry)
    resolved.labels(queue="support").inc(0)
    app_metrics, app_thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    targets = [
        monitoring.ScrapeTarget("litellm", proxy.url.removeprefix("http://"), "/metrics/"),
        monitoring.ScrapeTarget("app", f"127.0.0.1:{app_metrics.server_port}"),
    ]
    server = monitoring.Prometheus(
        monitoring.prometheus_config(targets, alertmanager="127.0.0.1:9", interval_s=1.0), workdir=tmp_path
    ).start()
    try:
        wait_for(lambda: server.target_health("litellm") == "up", timeout=30, what="LiteLLM scraped")
        wait_for(lambda: server.target_health("app") == "up", timeout=30, what="the application scraped")
        wait_for(lambda: server.query(OUTCOMES), timeout=60, what="the outcome counter scraped")
        # One request of each kind first: increase() counts from a series' first sample, so the series must exist
        # before the measured traffic.
        _ask(proxy, 0)
        _ask(proxy, 0, tags=[sources.ASSAY_CALL_TAG])
        wait_for(lambda: len(server.query(SPEND)) == 2, timeout=60, what="both spend series scraped")
        app_usd = sum(_ask(proxy, n) for n in range(1, APP_REQUESTS + 1))
        resolved.labels(queue="support").inc(RESOLVED)
        wait_for(
            lambda: (found := server.query(OUTCOMES)) and float(found[0]["value"][1]) >= RESOLVED,
            timeout=60,
            what="the resolved tickets scraped",
        )
        watch_usd = sum(_ask(proxy, n, tags=[sources.ASSAY_CALL_TAG]) for n in range(1, WATCH_REQUESTS + 1))
        tagged = f'{SPEND}{{tag_assay_watch="true"}}'
        wait_for(
            lambda: server.query(tagged) and float(server.query(tagged)[0]["value"][1]) > watch_usd,
            timeout=60,
            what="the tagged calls scraped",
        )

        body = yaml.safe_load((REPO / "examples" / "routepolicy-litellm.yaml").read_text())
        body["metadata"]["name"] = "support-policy"
        body["spec"]["promptType"] = ROUTE
        body["spec"]["outcome"] = {
            "name": "resolved ticket",
            "query": 'sum(increase(tickets_resolved_total{queue="support"}[$window]))',
        }
        client.CustomObjectsApi(kube.api_client()).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "routepolicies", body
        )
        # As the `operator` fixture does, KUBECONFIG stays set (the operator's threads may outlive the test).
        saved = {k: os.environ.get(k) for k in ("ASSAY_PROMETHEUS_URL", "ASSAY_SPEND_INTERVAL")}
        os.environ.update(KUBECONFIG=str(kube.kubeconfig), ASSAY_PROMETHEUS_URL=server.url, ASSAY_SPEND_INTERVAL="1")
        assay_kube.api_client.cache_clear()
        running = InProcessOperator().start()
        try:
            known = wait_for(
                lambda: (s := _spend_of(kube, namespace, "support-policy")).get("spend", {}).get("day") and s,
                timeout=60,
                what="status.spend written",
            )
            condition = conditions.get(known["conditions"], "SpendKnown")
            assert condition is not None and (condition["status"], condition["reason"]) == ("True", "Read")
            day = known["spend"]["day"]
            # increase() counts the measured requests (not the warm-up's first sample) and extrapolates by about a
            # scrape interval at most at each end of the series' sampled life: never below what was sent, and far
            # below what the tagged calls would add.
            assert app_usd * (1 - 1e-9) <= day["usd"], (day, app_usd)
            assert day["usd"] < app_usd + watch_usd / 2, f"the assay-watch calls (${watch_usd:.4f}) were counted"
            assert known["spend"]["week"]["usd"] >= app_usd and known["spend"]["month"]["usd"] >= app_usd
            assert day["requests"] >= APP_REQUESTS and day["requests"] < APP_REQUESTS + WATCH_REQUESTS / 2
            assert day["costPerRequestUsd"] == pytest.approx(day["usd"] / day["requests"], rel=0.5 / day["requests"])
            # The same increase() extrapolation: never below the tickets resolved, well below twice as many.
            assert RESOLVED <= day["outcomes"] < 2 * RESOLVED, day
            assert day["costPerOutcomeUsd"] == pytest.approx(day["usd"] / day["outcomes"], rel=1e-5)
            outcome_known = conditions.get(known["conditions"], "OutcomeKnown")
            assert outcome_known is not None and outcome_known["status"] == "True", known["conditions"]
            # The month-end forecast: this Prometheus has no history before today, so the month's complete days
            # spent nothing and the spend so far is today's, the route's whole spend.
            month_end = known["spend"]["forecast"]
            today = datetime.datetime.now(datetime.UTC)
            assert month_end["month"] == today.strftime("%Y-%m") and month_end["daysObserved"] == today.day - 1
            assert month_end["spentUsd"] == pytest.approx(day["usd"], rel=1e-3), month_end
            assert month_end["monthEndUsd"] >= month_end["spentUsd"]

            server.stop()
            unknown = wait_for(
                lambda: (
                    (s := _spend_of(kube, namespace, "support-policy"))
                    and (conditions.get(s.get("conditions"), "SpendKnown") or {}).get("status") == "False"
                    and s
                ),
                timeout=120,
                what="SpendKnown=False once Prometheus is stopped",
            )
            condition = conditions.get(unknown["conditions"], "SpendKnown")
            assert condition is not None and condition["reason"] == "PrometheusUnreachable"
            assert server.address in condition["message"]
            assert unknown["spend"]["day"]["usd"] >= app_usd, "the last good figures stay: never zero spend"
            events = client.CoreV1Api(kube.api_client()).list_namespaced_event(namespace).items
            assert "PrometheusUnreachable" in {e.reason for e in events}
        finally:
            running.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            assay_kube.api_client.cache_clear()
    finally:
        server.stop()
        app_metrics.shutdown()
        app_thread.join(timeout=10)

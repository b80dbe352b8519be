"""Spend read back through real parts: priced traffic through the real LiteLLM proxy (the pinned release) in
front of the LLM simulator, LiteLLM's /metrics/ scraped by a real Prometheus, and assay.spend's queries and
`assay top` reading it. The dollars per route and per feature label match what was sent, to the cent, as
computed from the token counts LiteLLM returned and the per-token prices configured on each deployment.

Prometheus's increase() extrapolates to the window's edges; for an exact figure the test evaluates the query at
the last scrape, over a window starting one millisecond before the scrape that holds the warm-up requests (whose
series must exist before the measured traffic, or increase() could not count the first request of each).
Skipped when LiteLLM or Prometheus is missing (hack/litellm.sh, hack/debian-packages.sh); under CI that fails.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client

import realparts
from assay import GROUP, VERSION, cli
from assay import kube as assay_kube
from assay.spend import command, focus, reading, sources
from assay.spend import prometheus as prom
from assaylab import litellm, monitoring
from assaylab import simulator as sim
from conftest import wait_for

pytestmark = [
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
    realparts.needs(
        "Prometheus", monitoring.find_prometheus(), "run hack/debian-packages.sh as root, or set ASSAY_PROMETHEUS"
    ),
]

# Per-token prices set on each deployment (custom pricing), far from the public ones, so a figure that matched
# only LiteLLM's built-in table would fail.
PRICES = {"gpt-4o": (0.0005, 0.0015), "gpt-4o-mini": (0.00004, 0.00016)}
ROUTES = {"support": "gpt-4o", "faq": "gpt-4o-mini"}
FEATURES = ("chat", "search")
FEATURE_LABEL = "metadata.feature"
REQUESTS_PER_PAIR = {("support", "chat"): 12, ("support", "search"): 5, ("faq", "chat"): 20, ("faq", "search"): 8}
SPEND = sources.LITELLM_SPEND
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def simulator() -> Iterator[sim.BackgroundSimulator]:
    with sim.BackgroundSimulator({"seed": 3, "models": {model: {} for model in PRICES}}) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(
    simulator: sim.BackgroundSimulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[litellm.LiteLLMProxy]:
    config = litellm.build_config(simulator_url=simulator.url, models=PRICES, aliases=ROUTES)
    for entry in config["model_list"]:
        prompt_price, completion_price = PRICES[entry["model_name"]]
        entry["litellm_params"].update(input_cost_per_token=prompt_price, output_cost_per_token=completion_price)
    config["litellm_settings"]["custom_prometheus_metadata_labels"] = [FEATURE_LABEL]
    path = litellm.write_config(tmp_path_factory.mktemp("litellm") / "config.yaml", config)
    with litellm.LiteLLMProxy(path) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus_server(
    proxy: litellm.LiteLLMProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[monitoring.Prometheus]:
    target = monitoring.ScrapeTarget("litellm", proxy.url.removeprefix("http://"), "/metrics/")
    # No rules here: the Alertmanager address is never called.
    config = monitoring.prometheus_config([target], alertmanager="127.0.0.1:9", interval_s=1.0)
    with monitoring.Prometheus(config, workdir=tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@dataclasses.dataclass
class Sent:
    """What the test sent and LiteLLM answered: dollars per (route, feature) from the returned token counts."""

    usd: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    requests: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    header_usd: float = 0.0

    def by(self, index: int) -> dict[str, float]:
        totals: dict[str, float] = {}
        for key, usd in self.usd.items():
            totals[key[index]] = totals.get(key[index], 0.0) + usd
        return totals


def _ask(proxy: litellm.LiteLLMProxy, route: str, feature: str, n: int, sent: Sent) -> None:
    # Questions of different lengths, so the token counts (and prices) differ per request.
    content = f"Question {n} about {feature}: " + "why is the quota lower " * (1 + n % 4)
    body = {"model": route, "messages": [{"role": "user", "content": content}], "metadata": {"feature": feature}}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=60)
    assert response.status_code == 200, response.text[:200]
    usage = response.json()["usage"]
    prompt_price, completion_price = PRICES[ROUTES[route]]
    usd = usage["prompt_tokens"] * prompt_price + usage["completion_tokens"] * completion_price
    sent.usd[route, feature] = sent.usd.get((route, feature), 0.0) + usd
    sent.requests[route, feature] = sent.requests.get((route, feature), 0) + 1
    sent.header_usd += float(response.headers["x-litellm-response-cost"])


def _latest_scrape(server: monitoring.Prometheus) -> tuple[float, float, int]:
    """(timestamp of the latest scrape holding the spend series, summed spend in it, number of series)."""
    stamps = server.query(f"timestamp({SPEND})")
    values = server.query(SPEND)
    if not stamps:
        return 0.0, 0.0, 0
    return max(float(s["value"][1]) for s in stamps), sum(float(v["value"][1]) for v in values), len(values)


def _scraped(server: monitoring.Prometheus, *, total: float, series: int) -> float:
    """Wait until Prometheus's latest scrape holds `series` spend series summing to `total`; its timestamp."""

    def ready() -> float | None:
        stamp, summed, count = _latest_scrape(server)
        return stamp if count == series and abs(summed - total) < 1e-9 else None

    return float(wait_for(ready, timeout=60, interval=0.5, what=f"Prometheus holding ${total:.6f} in {series} series"))


@dataclasses.dataclass
class Measured:
    sent: Sent
    window: str
    at: float


@pytest.fixture(scope="module")
def measured(proxy: litellm.LiteLLMProxy, prometheus_server: monitoring.Prometheus) -> Measured:
    wait_for(lambda: prometheus_server.target_health("litellm") == "up", timeout=30, what="LiteLLM scraped")
    warmup = Sent()
    for route, feature in itertools.product(ROUTES, FEATURES):
        _ask(proxy, route, feature, 0, warmup)
    start = _scraped(prometheus_server, total=sum(warmup.usd.values()), series=len(warmup.usd))
    sent = Sent()
    for (route, feature), count in REQUESTS_PER_PAIR.items():
        for n in range(1, count + 1):
            _ask(proxy, route, feature, n, sent)
    end = _scraped(prometheus_server, total=sum(warmup.usd.values()) + sum(sent.usd.values()), series=len(sent.usd))
    # One millisecond before the warm-up scrape, so that scrape is inside the window however its left edge is
    # treated; the extrapolation over that millisecond is a 1e-4 share of the figure at most.
    return Measured(sent, f"{round((end - start) * 1000) + 1}ms", end)


def _extrapolation(measured: Measured) -> float:
    """The largest share increase() may add: the window's extra millisecond over the window, with a margin."""
    return 1.5 / int(measured.window.removesuffix("ms"))


def _client(server: monitoring.Prometheus) -> prom.PrometheusClient:
    return prom.PrometheusClient(server.url)


def test_litellm_exports_the_verified_metric_and_label_names(
    proxy: litellm.LiteLLMProxy, prometheus_server: monitoring.Prometheus, measured: Measured
):
    series = prometheus_server.query(SPEND)
    labels = set().union(*(s["metric"] for s in series))
    assert {"requested_model", "model", "metadata_feature"} <= labels
    assert {s["metric"]["requested_model"] for s in series} == set(ROUTES)
    assert {s["metric"]["model"] for s in series} == set(PRICES), "model is the deployment that served the alias"
    assert prometheus_server.query(sources.LITELLM_REQUESTS), "the request counter is exported too"
    # LiteLLM priced each response with the configured per-token prices (its own header says the same).
    assert measured.sent.header_usd == pytest.approx(sum(measured.sent.usd.values()), abs=1e-9)


def test_spend_per_route_matches_the_requests_sent_to_the_cent(
    prometheus_server: monitoring.Prometheus, measured: Measured
):
    source = sources.LiteLLMSource(metadata_labels={"feature": FEATURE_LABEL})
    with _client(prometheus_server) as client:
        per_route = reading.spend(client, source, measured.window, at=measured.at)
        requests = reading.requests(client, source, measured.window, at=measured.at)
    expected = measured.sent.by(0)
    assert set(per_route) == set(ROUTES)
    for route, usd in expected.items():
        assert abs(per_route[route] - usd) < 0.005, (route, per_route[route], usd)  # to the cent
        assert per_route[route] == pytest.approx(usd, rel=_extrapolation(measured))
    assert requests is not None
    sent_requests = {route: sum(n for (r, _), n in measured.sent.requests.items() if r == route) for route in ROUTES}
    assert {route: round(count) for route, count in requests.items()} == sent_requests
    print(f"\nspend per route over {measured.window}: " + ", ".join(f"{r} ${per_route[r]:.6f}" for r in per_route))


def test_spend_per_feature_label_matches_the_requests_sent_to_the_cent(
    prometheus_server: monitoring.Prometheus, measured: Measured
):
    source = sources.LiteLLMSource(metadata_labels={"feature": FEATURE_LABEL})
    with _client(prometheus_server) as client:
        per_feature = reading.spend(client, source, measured.window, by="feature", at=measured.at)
    expected = measured.sent.by(1)
    assert set(per_feature) == set(FEATURES)
    for feature, usd in expected.items():
        assert abs(per_feature[feature] - usd) < 0.005, (feature, per_feature[feature], usd)
        assert per_feature[feature] == pytest.approx(usd, rel=_extrapolation(measured))


def test_the_standard_windows_read_the_same_traffic(prometheus_server: monitoring.Prometheus, measured: Measured):
    """Over 1d the series' whole life is in the window: increase() counts all but each series' first sample
    (the warm-up), and extrapolates towards the window's start by up to half a scrape interval."""
    source = sources.LiteLLMSource()
    with _client(prometheus_server) as client:
        day = reading.spend(client, source, "1d", at=measured.at)
    # Extrapolation adds at most 1.1 scrape intervals (1 s) over the series' sampled life, which is at least the
    # exact window; it never subtracts.
    sampled_s = int(measured.window.removesuffix("ms")) / 1000
    for route, usd in measured.sent.by(0).items():
        assert usd * (1 - 1e-9) <= day[route] <= usd * (1 + 1.1 / sampled_s), (route, day[route], usd)
    print(
        "\nincrease()[1d] against the dollars sent: "
        + ", ".join(f"{r} {100 * (day[r] / usd - 1):+.2f}%" for r, usd in measured.sent.by(0).items())
    )


def test_assay_top_ranks_the_routes_with_the_measured_dollars(
    prometheus_server: monitoring.Prometheus, measured: Measured, capsys: pytest.CaptureFixture[str]
):
    args = ["top", "--prometheus-url", prometheus_server.url, "--no-cluster", "--window", measured.window]
    code = cli.main([*args, "--at", f"{measured.at:.3f}"])
    out = capsys.readouterr().out
    assert code == 0
    # The sent dollars (deterministic: the simulator's seed, fixed questions) are far from a half cent, so the
    # table's rounding of the measured figure equals the rounding of the sent one.
    expected = sorted(measured.sent.by(0).items(), key=lambda item: -item[1])
    rows = [line for line in out.splitlines()[1:] if not line.startswith("----")][: len(expected)]
    for row, (route, usd) in zip(rows, expected, strict=True):
        assert row.split()[1:3] == [route, f"${usd:,.2f}"], out

    code = cli.main([*args, "--at", f"{measured.at:.3f}", "--by", "feature", "--output", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {row["feature"]: round(row["usd"], 2) for row in report["rows"]} == {
        feature: round(usd, 2) for feature, usd in measured.sent.by(1).items()
    }
    assert report["rows"][-1]["cumulativeShare"] == pytest.approx(1.0)

    code = cli.main([*args, "--at", f"{measured.at:.3f}", "--output", "focus"])
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert code == 0
    assert {row["ResourceId"]: round(float(row["BilledCost"]), 2) for row in exported} == {
        route: round(usd, 2) for route, usd in measured.sent.by(0).items()
    }
    assert {row["ChargePeriodEnd"] for row in exported} == {focus.stamp(measured.at)}
    with capsys.disabled():
        print("\n" + out)


def test_bad_promql_is_refused_by_the_real_prometheus_as_bad_data(prometheus_server: monitoring.Prometheus):
    source = sources.PromQLSource(spend="sum by ($by) (increase(litellm_spend_metric_total[$window])")
    with _client(prometheus_server) as client, pytest.raises(prom.BadQuery) as caught:
        reading.spend(client, source, "1d")
    assert caught.value.error_type == "bad_data"


def test_no_series_is_an_error_not_zero_spend(prometheus_server: monitoring.Prometheus):
    source = sources.LiteLLMSource(matchers={"namespace": "nowhere"})
    with _client(prometheus_server) as client, pytest.raises(prom.NoSeries, match='namespace="nowhere"'):
        reading.spend(client, source, "1d")


def test_assay_top_against_a_prometheus_that_is_down_fails_with_a_clear_error(tmp_path: Path):
    stopped = monitoring.Prometheus(monitoring.prometheus_config([], alertmanager="127.0.0.1:9"), workdir=tmp_path)
    err = io.StringIO()
    code = command.main(["--prometheus-url", stopped.url, "--no-cluster"], stdout=io.StringIO(), stderr=err, env={})
    assert code == command.EXIT_FAILED
    assert f"is Prometheus running at {stopped.url}" in err.getvalue()


@pytest.mark.integration
def test_assay_top_marks_routes_with_policies_and_a_qualified_candidate_from_the_cluster(
    kube, namespace: str, monkeypatch: pytest.MonkeyPatch, prometheus_server: monitoring.Prometheus, measured: Measured
):
    """A RoutePolicy for the `support` route whose candidate `tiny` passed (projected saving 80%) while `mini`
    serves: `assay top` lists the policy, offers `tiny` and its saving; `faq` has no policy."""
    body = yaml.safe_load((REPO / "examples" / "routepolicy-litellm.yaml").read_text())
    body["metadata"]["name"] = "support-policy"
    body["spec"]["promptType"] = "support"
    # The outcome counted here is the route's own request counter: the real Prometheus answers it, and the cost per
    # outcome must then equal the cost per request.
    outcome = f'sum(increase({sources.LITELLM_REQUESTS}{{requested_model="support"}}[$window]))'
    body["spec"]["outcome"] = {"name": "answered question", "query": outcome}
    custom = client.CustomObjectsApi(kube.api_client())
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "routepolicies", body)
    status = {
        "promotedCandidate": "mini",
        "candidates": [
            {"name": "mini", "phase": "Passed", "savingsPercent": 60.0},
            {"name": "tiny", "phase": "Passed", "savingsPercent": 80.0},
        ],
    }
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "routepolicies", "support-policy", {"status": status}
    )
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    assay_kube.api_client.cache_clear()
    try:
        out, err = io.StringIO(), io.StringIO()
        args = ["--prometheus-url", prometheus_server.url, "-n", namespace, "--output", "json"]
        code = command.main([*args, "--window", measured.window, "--at", f"{measured.at:.3f}"], stdout=out, stderr=err)
    finally:
        assay_kube.api_client.cache_clear()
    assert (code, err.getvalue()) == (0, "")
    rows = {row["route"]: row for row in json.loads(out.getvalue())["rows"]}
    assert rows["support"]["policies"] == [f"{namespace}/support-policy"]
    assert (rows["support"]["qualifiedCandidate"], rows["support"]["projectedSavingPercent"]) == ("tiny", 80.0)
    assert (rows["faq"]["policies"], rows["faq"]["qualifiedCandidate"]) == ([], None)
    (counted,) = rows["support"]["outcomes"]
    assert counted["name"] == "answered question" and counted["outcomes"] == pytest.approx(rows["support"]["requests"])
    assert counted["costPerOutcome"] == pytest.approx(rows["support"]["costPerRequest"])
    assert rows["faq"]["outcomes"] == []

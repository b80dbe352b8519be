"""The real LiteLLM proxy (the pinned release from hack/litellm.sh) in front of the LLM simulator.

These tests pin down the LiteLLM behaviour the gateway adapter and the evaluator rely on: an alias maps to
a model group through `router_settings.model_group_alias`, a config edit takes effect on restart, the
admin API without a database can read the alias map but not write it, and /metrics/ is public.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import realparts
from assaylab import litellm
from assaylab import simulator as sim

pytestmark = [
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]

ALIAS = "support-bot"
MODELS = ("gpt-4o", "gpt-4o-mini", "limited")
QUESTION = [{"role": "user", "content": "Explain how the cache affects the quota."}]


@pytest.fixture(scope="module")
def simulator() -> Iterator[sim.BackgroundSimulator]:
    config = {
        "seed": 1,
        "models": {"gpt-4o": {}, "gpt-4o-mini": {}, "limited": {"rate_limit_rate": 1.0, "retry_after_s": 3}},
    }
    with sim.BackgroundSimulator(config) as server:
        yield server


def _write(path: Path, simulator: sim.BackgroundSimulator, target: str) -> Path:
    config = litellm.build_config(simulator_url=simulator.url, models=MODELS, aliases={ALIAS: target})
    return litellm.write_config(path, config)


@pytest.fixture(scope="module")
def config_path(simulator: sim.BackgroundSimulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("litellm") / "config.yaml", simulator, "gpt-4o")


@pytest.fixture(scope="module")
def proxy(config_path: Path) -> Iterator[litellm.LiteLLMProxy]:
    with litellm.LiteLLMProxy(config_path) as running:
        yield running


def _completions(simulator: sim.BackgroundSimulator) -> dict[str, int]:
    return {name: counters["completions"] for name, counters in simulator.stats()["models"].items()}


def _ask(proxy: litellm.LiteLLMProxy, model: str = ALIAS, *, authenticated: bool = True) -> httpx.Response:
    body = {"model": model, "messages": QUESTION}
    headers = proxy.headers if authenticated else {}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_alias_is_answered_by_the_mapped_model_and_switches_on_restart(
    proxy: litellm.LiteLLMProxy, simulator: sim.BackgroundSimulator, config_path: Path
) -> None:
    before = _completions(simulator)
    response = _ask(proxy)
    assert response.status_code == 200
    assert response.headers["x-litellm-model-name"] == "openai/gpt-4o"
    assert response.json()["choices"][0]["message"]["content"] == sim.ideal_answer(QUESTION[0]["content"])
    assert _completions(simulator)["gpt-4o"] == before["gpt-4o"] + 1

    url = proxy.url
    try:
        _write(config_path, simulator, "gpt-4o-mini")
        proxy.restart()
        assert proxy.url == url
        before = _completions(simulator)
        switched = _ask(proxy)
        assert switched.status_code == 200
        assert switched.headers["x-litellm-model-name"] == "openai/gpt-4o-mini"
        after = _completions(simulator)
        assert (after["gpt-4o-mini"] - before["gpt-4o-mini"], after["gpt-4o"] - before["gpt-4o"]) == (1, 0)
    finally:
        # Roll back to the first mapping, as a rollback restores the last known good route.
        _write(config_path, simulator, "gpt-4o")
        proxy.restart()
    assert _ask(proxy).headers["x-litellm-model-name"] == "openai/gpt-4o"


def test_router_settings_report_the_alias_map_without_a_database(proxy: litellm.LiteLLMProxy) -> None:
    response = httpx.get(f"{proxy.url}/router/settings", headers=proxy.headers, timeout=30)
    assert response.status_code == 200
    assert response.json()["current_values"]["model_group_alias"] == {ALIAS: "gpt-4o"}
    assert response.json()["source"]["model_group_alias"] == "config"
    assert httpx.get(f"{proxy.url}/router/settings", timeout=30).status_code == 401


def test_config_update_needs_a_database(proxy: litellm.LiteLLMProxy) -> None:
    update = {"router_settings": {"model_group_alias": {ALIAS: "gpt-4o-mini"}}}
    response = httpx.post(f"{proxy.url}/config/update", json=update, headers=proxy.headers, timeout=30)
    assert response.status_code == 400
    assert "No DB Connected" in response.json()["error"]["message"]


def test_metrics_are_public_and_count_responses_per_deployment(proxy: litellm.LiteLLMProxy) -> None:
    assert _ask(proxy).status_code == 200
    metrics = httpx.get(f"{proxy.url}/metrics/", timeout=30)
    assert metrics.status_code == 200
    success = re.search(
        r'^litellm_deployment_success_responses_total\{[^}]*litellm_model_name="gpt-4o"[^}]*'
        r'model_group="support-bot"[^}]*\} (\d+(?:\.\d+)?)$',
        metrics.text,
        re.MULTILINE,
    )
    assert success is not None and float(success.group(1)) >= 1
    assert "litellm_request_total_latency_metric_bucket" in metrics.text
    assert httpx.get(f"{proxy.url}/metrics", timeout=30).status_code == 307


def test_rate_limits_pass_through_with_the_provider_retry_after_header(proxy: litellm.LiteLLMProxy) -> None:
    response = _ask(proxy, "limited")
    assert response.status_code == 429
    # LiteLLM renames the upstream Retry-After; a client behind it must read this header.
    assert response.headers["llm_provider-retry-after"] == "3"
    assert "retry-after" not in response.headers


def test_requests_without_the_master_key_are_refused(proxy: litellm.LiteLLMProxy) -> None:
    assert _ask(proxy, authenticated=False).status_code == 401

"""The live quality watch with real parts: the real LiteLLM proxy runs assay's sampler callback, which sends the
promoted arm's served requests to the operator's recorder; the operator replays each to the baseline through the
same proxy, has the simulator's judge compare them blind in both orders, and feeds the drift detector. While the
promoted candidate holds its quality no alarm is raised; once the simulator degrades it, assay proves the drop
and rolls the route back itself (reason QualityDrift), with no external alert.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

import realparts
from assay.promotion import machine
from assay.watch import litellm_sampler
from assaylab import controlplane, litellm, simulator
from assaylab import stack as local_stack
from conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]

WEBHOOK_TOKEN = "watch-webhook-token"
RECORDER_TOKEN = "watch-recorder-token"
CANDIDATE = "gpt-4o-mini"
QUESTIONS = simulator.make_dataset(200, seed=5)
# Threshold 10,000 (0.1 days at 100,000 samples a day): a false alarm within the first 60 samples has
# probability at most 60 / 10,000 = 0.6%; a candidate that always loses crosses it within a few dozen samples.
WATCH = {
    "sampleRate": 1.0,
    "maxSamplesPerDay": 100_000,
    "meanDaysBetweenFalseAlarms": 0.1,
    "maxCostPerDay": 1000,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.LocalStack]:
    workdir = tmp_path_factory.mktemp("stack")  # kept by pytest: operator and LiteLLM logs for failures
    # LiteLLM loads the callback from its config file's directory, as a ConfigMap mount would hold it.
    shutil.copy(pathlib.Path(litellm_sampler.__file__), workdir / "assay_sampler.py")
    port = controlplane.free_port()
    saved = {
        k: os.environ.get(k) for k in ("ASSAY_RECORDER_URL", "ASSAY_RECORDER_TOKEN", "ASSAY_SAMPLER_REFRESH_SECONDS")
    }
    os.environ.update(
        {
            "ASSAY_RECORDER_URL": f"http://127.0.0.1:{port}",
            "ASSAY_RECORDER_TOKEN": RECORDER_TOKEN,  # the operator's and the sampler's copy of the same Secret
            "ASSAY_SAMPLER_REFRESH_SECONDS": "1",
        }
    )
    try:
        running = local_stack.LocalStack(
            namespace="watch", executor=False, webhook_token=WEBHOOK_TOKEN, workdir=workdir
        )
        running.webhook_port = port
        with running:
            running.put_dataset("prompts", QUESTIONS[:20])
            _install_sampler(running)
            yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _install_sampler(stack: local_stack.LocalStack) -> None:
    """Add the callback to LiteLLM's config and roll its Deployment, as an operator of the gateway would."""
    core = client.CoreV1Api(stack.api)
    cm = core.read_namespaced_config_map(local_stack.LITELLM_CONFIGMAP, stack.namespace)
    config = yaml.safe_load(cm.data["config.yaml"])
    config["litellm_settings"]["callbacks"] = ["prometheus", "assay_sampler.sampler"]
    core.patch_namespaced_config_map(
        local_stack.LITELLM_CONFIGMAP,
        stack.namespace,
        {"data": {"config.yaml": yaml.safe_dump(config, sort_keys=False)}},
    )
    assert stack.gateway is not None
    restarts = stack.gateway.restarts
    client.AppsV1Api(stack.api).patch_namespaced_deployment(
        local_stack.LITELLM_DEPLOYMENT,
        stack.namespace,
        {"spec": {"template": {"metadata": {"annotations": {"example.com/sampler": "installed"}}}}},
    )
    wait_for(lambda: stack.gateway.restarts > restarts, timeout=120, interval=0.5, what="LiteLLM restarted")


def _ask(stack: local_stack.LocalStack, index: int) -> str | None:
    """One application request on the route; which model served it (None while LiteLLM restarts)."""
    try:
        response = httpx.post(
            f"{stack.litellm_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
            json={"model": stack.route, "messages": QUESTIONS[index % len(QUESTIONS)]["messages"]},
            timeout=30,
        )
    except httpx.TransportError:
        return None
    return response.headers["x-litellm-model-name"].split("/", 1)[-1] if response.status_code == 200 else None


def _status(stack: local_stack.LocalStack, name: str) -> dict[str, Any]:
    return stack.get("RoutePolicy", name).get("status") or {}


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_a_promoted_candidate_that_degrades_is_rolled_back_by_assay_and_one_that_holds_is_not(
    stack: local_stack.LocalStack,
) -> None:
    stack.create(
        stack.policy(
            "watched", candidates=[{"name": "mini", "model": CANDIDATE}], promotion={"automatic": False}, watch=WATCH
        )
    )
    wait_for(lambda: _status(stack, "watched").get("lastKnownGood"), timeout=60, what="baseline snapshot")
    client.CustomObjectsApi(stack.api).patch_namespaced_custom_object(
        local_stack.GROUP,
        local_stack.VERSION,
        stack.namespace,
        "routepolicies",
        "watched",
        {"metadata": {"annotations": {machine.PROMOTE_ANNOTATION: "mini@1"}}},
    )
    wait_for(
        lambda: (s := _status(stack, "watched")).get("phase") == "Promoted" and "pending" not in s,
        timeout=60,
        what="Promoted",
    )
    wait_for(lambda: _ask(stack, 0) == CANDIDATE, timeout=120, interval=1, what="LiteLLM serving the candidate")

    # Holding its quality (the simulator's gpt-4o-mini is as good as gpt-4o): samples are judged, no alarm.
    asked = 1
    for _ in range(60):
        _ask(stack, asked)
        asked += 1
    held = wait_for(
        lambda: (w := _status(stack, "watched").get("watch") or {}).get("samples", 0) >= 40 and w,
        timeout=240,
        interval=1,
        what="40 samples judged",
    )
    status = _status(stack, "watched")
    assert status["phase"] == "Promoted" and held.get("alarmedAt") is None, held
    assert held["wins"] + held["ties"] + held["losses"] == held["samples"]
    assert 0 < held["eValue"] < held["threshold"] == pytest.approx(10_000)
    assert held["costUsd"] > 0
    assert _condition(status, "Watched").get("status") == "True", status["conditions"]
    assert _condition(status, "QualityDrift") == {}
    stats = stack.simulator.stats()["models"]
    # A win or a loss is judged in both orders (a tie may be identical answers, which skip the judge).
    assert stats["judge-large"]["requests"] >= 2 * (held["wins"] + held["losses"])

    # The provider degrades the candidate: assay proves the drop and restores the baseline by itself.
    stack.simulator.set_quality(CANDIDATE, 0.0)

    def rolled_back() -> dict[str, Any] | None:
        nonlocal asked
        current = _status(stack, "watched")
        if current.get("phase") == "RolledBack" and "pending" not in current:
            return current
        if current.get("phase") == "Promoted":
            _ask(stack, asked)
            asked += 1
        return None

    after = wait_for(rolled_back, timeout=300, interval=0.2, what="rolled back on QualityDrift")
    assert _condition(after, "RolledBack")["reason"] == "QualityDrift"
    assert _condition(after, "QualityDrift")["status"] == "True"
    watch = after["watch"]
    assert watch["alarmedAt"] is not None and watch["eValue"] >= watch["threshold"]
    assert watch["losses"] > held["losses"]
    assert after["activeRoute"]["model"] == after["lastKnownGood"]["model"] == stack.baseline
    assert "lastAlert" not in after  # no external alert was involved
    wait_for(lambda: _ask(stack, 0) == stack.baseline, timeout=120, interval=1, what="LiteLLM serving the baseline")

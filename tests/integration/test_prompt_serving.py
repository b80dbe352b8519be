"""Serving what was qualified, with real parts: a candidate qualified with a systemPrompt is promoted through
the LiteLLM ConfigMap adapter, and the real LiteLLM proxy then calls the candidate model with that prompt merged
into the app's system message, exactly as the evaluator sent it; the baseline never gets it, and after a
rollback nobody does. The LLM simulator records which system message each model was called under (a hash).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

import realparts
from assay.evaluator import pairs
from assay.gateways import litellm_config
from assay.promotion import machine
from assaylab import litellm, simulator
from assaylab import stack as local_stack
from conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]

BASELINE, CANDIDATE = "gpt-4o", "gpt-4o-mini"
PROMPT = "Answer in two sentences.\nQuote the refund policy when it applies."
APP_MESSAGES = [
    {"role": "system", "content": "You are the support summary bot."},
    {"role": "user", "content": "Summarize the ticket."},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.LocalStack]:
    workdir = tmp_path_factory.mktemp("stack")  # kept by pytest: operator and LiteLLM logs for failures
    with local_stack.LocalStack(namespace="prompt-serving", executor=False, workdir=workdir) as running:
        running.put_dataset("prompts", simulator.make_dataset(20, seed=1))
        yield running


def _ask(stack: local_stack.LocalStack) -> httpx.Response:
    return httpx.post(
        f"{stack.litellm_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
        json={"model": stack.route, "messages": APP_MESSAGES},
        timeout=30,
    )


def _served_by(stack: local_stack.LocalStack) -> str | None:
    try:
        response = _ask(stack)
    except httpx.TransportError:  # LiteLLM restarting on the new config
        return None
    return response.headers["x-litellm-model-name"].split("/", 1)[-1] if response.status_code == 200 else None


def _system_messages(stack: local_stack.LocalStack, model: str) -> dict[str, int]:
    assert stack.simulator is not None
    counts: dict[str, int] = stack.simulator.stats()["models"][model]["system_messages"]
    return dict(counts)


def _status(stack: local_stack.LocalStack, name: str) -> dict[str, Any]:
    return stack.get("RoutePolicy", name).get("status") or {}


def _annotate(stack: local_stack.LocalStack, name: str, key: str, value: str) -> None:
    client.CustomObjectsApi(stack.api).patch_namespaced_custom_object(
        local_stack.GROUP,
        local_stack.VERSION,
        stack.namespace,
        "routepolicies",
        name,
        {"metadata": {"annotations": {key: value}}},
    )


def _config_text(stack: local_stack.LocalStack) -> str:
    cm = client.CoreV1Api(stack.api).read_namespaced_config_map(local_stack.LITELLM_CONFIGMAP, stack.namespace)
    return str((cm.data or {})["config.yaml"])


def test_the_promoted_candidate_is_served_with_its_qualified_prompt_on_its_arm_only(stack: local_stack.LocalStack):
    stack.create(
        stack.policy(
            "prompted",
            candidates=[{"name": "mini", "model": CANDIDATE, "systemPrompt": PROMPT}],
            promotion={"automatic": False},
        )
    )
    lkg = wait_for(lambda: _status(stack, "prompted").get("lastKnownGood"), what="baseline snapshot", timeout=60)
    assert lkg["model"] == BASELINE
    ready = next(c for c in _status(stack, "prompted")["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready  # LiteLLMConfigMap serves a candidate's prompt: not PromptNotServable

    # What the evaluator sent the candidate, and so what the gateway must send it.
    as_qualified = simulator.system_message_digest(pairs.apply_system_prompt(APP_MESSAGES, PROMPT))
    as_sent_by_app = simulator.system_message_digest(APP_MESSAGES)
    before = _system_messages(stack, CANDIDATE)

    _annotate(stack, "prompted", machine.PROMOTE_ANNOTATION, "mini@1")
    promoted = wait_for(
        lambda: (s := _status(stack, "prompted")).get("phase") == "Promoted" and "pending" not in s and s,
        timeout=60,
        what="Promoted",
    )
    arm = litellm_config.arm_name(CANDIDATE, PROMPT)
    assert promoted["activeRoute"]["model"] == arm  # the status names the prompt (by its hash), not its text
    assert PROMPT not in str(promoted)
    assert litellm_config.read_alias(_config_text(stack), stack.route) == arm
    wait_for(lambda: _served_by(stack) == CANDIDATE, timeout=90, interval=1, what="LiteLLM serving the candidate")

    baseline_before = _system_messages(stack, BASELINE)
    for _ in range(3):
        assert _ask(stack).status_code == 200
    after = _system_messages(stack, CANDIDATE)
    assert after.get(as_qualified, 0) - before.get(as_qualified, 0) >= 4  # the wait's request and these three
    assert after.get(as_sent_by_app, 0) == before.get(as_sent_by_app, 0)
    assert _system_messages(stack, BASELINE) == baseline_before

    _annotate(stack, "prompted", machine.ROLLBACK_ANNOTATION, "now")
    rolled = wait_for(
        lambda: (s := _status(stack, "prompted")).get("phase") == "RolledBack" and "pending" not in s and s,
        timeout=60,
        what="RolledBack",
    )
    assert rolled["activeRoute"]["model"] == BASELINE and rolled["lastKnownGood"] == lkg
    wait_for(lambda: _served_by(stack) == BASELINE, timeout=90, interval=1, what="LiteLLM serving the baseline")
    prompted_calls = _system_messages(stack, CANDIDATE).get(as_qualified, 0)
    baseline_calls = _system_messages(stack, BASELINE)
    for _ in range(3):
        assert _ask(stack).status_code == 200
    assert _system_messages(stack, CANDIDATE).get(as_qualified, 0) == prompted_calls
    # The baseline answers under the app's own system message only: the prompt is on no arm after the rollback.
    now = _system_messages(stack, BASELINE)
    assert now.get(as_sent_by_app, 0) - baseline_calls.get(as_sent_by_app, 0) == 3
    assert set(now) - {as_sent_by_app} == set(baseline_calls) - {as_sent_by_app}

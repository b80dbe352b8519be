"""The simulator over HTTP: OpenAI shapes, errors, 429s, auth, counters, and the ways to run it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.qualification import judge
from assaylab import simulator as sim

QUESTION = [{"role": "user", "content": "Explain how the cache affects the quota."}]


def serve(**models: dict[str, Any]) -> sim.SimulatorServer:
    """A simulator serving `models`, started by `async with` on a free port."""
    return sim.SimulatorServer({"seed": 1, "models": models})


async def _chat(client: httpx.AsyncClient, server: sim.SimulatorServer, **body: Any) -> httpx.Response:
    return await client.post(f"{server.base_url}/chat/completions", json={"messages": QUESTION, **body})


async def test_chat_completion_has_the_openai_shape_and_token_usage() -> None:
    async with serve(m={"quality": 1.0}) as server, httpx.AsyncClient() as client:
        response = await _chat(client, server, model="m")
        assert response.status_code == 200
        body = response.json()
        content = body["choices"][0]["message"]["content"]
        assert content == sim.ideal_answer(QUESTION[0]["content"])
        assert body["object"] == "chat.completion" and body["model"] == "m"
        assert body["choices"][0]["finish_reason"] == "stop"
        usage = body["usage"]
        assert usage["completion_tokens"] == sim.count_tokens(content) > 0
        assert usage["prompt_tokens"] == sim.prompt_tokens(QUESTION) > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        unversioned = await client.post(f"{server.url}/chat/completions", json={"model": "m", "messages": QUESTION})
        assert unversioned.json()["choices"][0]["message"]["content"] == content


async def test_a_retried_request_gets_the_same_answer() -> None:
    async with serve(m={"quality": 0.5, "verbosity": 1.5}) as server, httpx.AsyncClient() as client:
        answers = {
            (await _chat(client, server, model="m")).json()["choices"][0]["message"]["content"] for _ in range(5)
        }
        assert len(answers) == 1


async def test_unknown_model_is_a_404_with_an_openai_error() -> None:
    async with serve(m={}) as server, httpx.AsyncClient() as client:
        response = await _chat(client, server, model="gpt-5")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        assert "gpt-5" in response.json()["error"]["message"]
        assert server.stats()["unknown_model_requests"] == 1


async def test_streaming_is_rejected_naming_the_field() -> None:
    async with serve(m={}) as server, httpx.AsyncClient() as client:
        response = await _chat(client, server, model="m", stream=True)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "stream"
        assert "stream" in response.json()["error"]["message"]


async def test_malformed_requests_are_400s_naming_the_field() -> None:
    async with serve(m={}) as server, httpx.AsyncClient() as client:
        no_messages = await client.post(f"{server.base_url}/chat/completions", json={"model": "m"})
        assert (no_messages.status_code, no_messages.json()["error"]["param"]) == (400, "messages")
        not_json = await client.post(f"{server.base_url}/chat/completions", content=b"{")
        assert not_json.status_code == 400


async def test_rate_limited_requests_are_429s_with_retry_after() -> None:
    async with serve(
        m={"rate_limit_rate": 1.0, "retry_after_s": 2}, f={"rate_limit_rate": 1.0, "retry_after_s": 0.25}
    ) as server:
        async with httpx.AsyncClient() as client:
            response = await _chat(client, server, model="m")
            fractional = await _chat(client, server, model="f")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "2"
        assert response.headers["retry-after-ms"] == "2000"
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert fractional.headers["Retry-After"] == "0.25"
        assert server.stats()["models"]["m"]["rate_limited"] == 1


async def test_server_errors_are_drawn_per_request_so_a_retry_can_succeed() -> None:
    async def statuses(server: sim.SimulatorServer) -> list[int]:
        async with httpx.AsyncClient() as client:
            return [(await _chat(client, server, model="m")).status_code for _ in range(40)]

    async with serve(m={"error_rate": 0.5}) as first, serve(m={"error_rate": 0.5}) as second:
        sequence = await statuses(first)
        assert set(sequence) == {200, 500}
        assert await statuses(second) == sequence
        assert first.stats()["models"]["m"]["errors"] == sequence.count(500)


async def test_api_key_is_required_when_configured() -> None:
    async with sim.SimulatorServer({"api_key": "sk-right", "models": {"m": {}}}) as server:
        async with httpx.AsyncClient() as client:
            missing = await _chat(client, server, model="m")
            wrong = await client.post(
                f"{server.base_url}/chat/completions",
                json={"model": "m", "messages": QUESTION},
                headers={"Authorization": "Bearer sk-wrong"},
            )
            right = await client.post(
                f"{server.base_url}/chat/completions",
                json={"model": "m", "messages": QUESTION},
                headers={"Authorization": "Bearer sk-right"},
            )
        assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
        assert missing.json()["error"]["code"] == "invalid_api_key"


async def test_stats_count_requests_outcomes_and_tokens() -> None:
    async with serve(m={"quality": 1.0}, judge={"role": "judge"}) as server, httpx.AsyncClient() as client:
        body = (await _chat(client, server, model="m")).json()
        ideal = sim.ideal_answer(QUESTION[0]["content"])
        judge_messages = judge.build_judge_messages(QUESTION, ideal, "Wrong.")
        verdict = await client.post(
            f"{server.base_url}/chat/completions", json={"model": "judge", "messages": judge_messages}
        )
        assert judge.parse_verdict(verdict.json()["choices"][0]["message"]["content"]) == "A"
        stats = (await client.get(f"{server.url}/stats")).json()
    model = stats["models"]["m"]
    assert (model["requests"], model["completions"], model["ideal_answers"]) == (1, 1, 1)
    assert model["total_tokens"] == body["usage"]["total_tokens"]
    assert stats["models"]["judge"]["verdicts"]["A"] == 1


async def test_models_and_health_are_served() -> None:
    async with serve(a={}, b={"role": "judge"}) as server, httpx.AsyncClient() as client:
        models = (await client.get(f"{server.base_url}/models")).json()
        health = await client.get(f"{server.url}/healthz")
    assert [m["id"] for m in models["data"]] == ["a", "b"]
    assert health.status_code == 200


async def test_latency_is_applied_to_successful_replies() -> None:
    async with serve(slow={"latency_ms": 80}) as server, httpx.AsyncClient() as client:
        started = time.monotonic()
        await _chat(client, server, model="slow")
        assert time.monotonic() - started >= 0.075


async def test_max_tokens_truncates_with_finish_reason_length() -> None:
    async with serve(m={}) as server, httpx.AsyncClient() as client:
        body = (await _chat(client, server, model="m", max_tokens=3)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_background_simulator_serves_synchronous_clients() -> None:
    with sim.BackgroundSimulator({"models": {"m": {}}}) as server:
        response = httpx.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": QUESTION})
        assert response.status_code == 200
        assert server.stats()["models"]["m"]["completions"] == 1
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_command_line_prints_the_bound_url_first(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text("models:\n  m: {quality: 1.0}\n")
    command = [sys.executable, "-m", "assaylab.simulator", "--config", str(config), "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            response = httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": QUESTION})
            assert response.status_code == 200
        finally:
            process.terminate()
        assert process.wait(timeout=10) == 0

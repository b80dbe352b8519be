"""Helpers for the evaluator's tests: run specs, datasets on disk, reading evidence back, and a tiny fake
OpenAI server for behaviours the simulator does not script (exact call sequences, concurrency)."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from assay import httpclient
from assay.api import QualificationRunSpec
from assay.evaluator import sinks
from assay.qualification import judge
from assaylab import simulator

FAST_RETRY = httpclient.RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01)

BASELINE, CANDIDATE, JUDGE = "base-model", "cheap-model", "judge-model"


def world(**models: Mapping[str, Any]) -> dict[str, Any]:
    """A simulator config: a good baseline, a weaker candidate and a clean judge, each overridable."""
    defaults: dict[str, dict[str, Any]] = {
        BASELINE: {"quality": 0.8},
        CANDIDATE: {"quality": 0.6},
        JUDGE: {"role": "judge"},
    }
    for name, overrides in models.items():
        defaults[name] = {**defaults.get(name, {}), **overrides}
    return {"seed": 11, "models": defaults}


def write_jsonl(path: pathlib.Path, records: Iterable[Mapping[str, Any] | str]) -> pathlib.Path:
    """Records (or raw lines) as JSON Lines."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_spec(url: str, dataset_path: pathlib.Path, **sections: Mapping[str, Any]) -> QualificationRunSpec:
    """A QualificationRunSpec against `url` on a dataset file; `sections` override test/execution/... fields."""
    wire: dict[str, Any] = {
        "endpoint": {"url": url},
        "baseline": {"model": BASELINE},
        "candidate": {"name": "cheap", "model": CANDIDATE},
        "dataset": {"path": str(dataset_path)},
        "judge": {"model": JUDGE},
        "test": {"seed": 5, "controlShare": 0.1},
        "execution": {"concurrency": 8, "chunkSize": 7},
    }
    for section, values in sections.items():
        wire[section] = {**wire.get(section, {}), **values}
    return QualificationRunSpec.model_validate(wire)


def evidence(directory: pathlib.Path) -> list[dict[str, Any]]:
    """Every record in a FileSink directory, all shards, sorted by position."""
    by_shard, _ = sinks.read_evidence_dir(directory)
    return sorted((r for records in by_shard.values() for r in records), key=lambda r: r["seq"])


def without_latency(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records with their latencies removed: everything else is a function of the seed."""
    stripped = []
    for record in records:
        copy = {k: v for k, v in record.items() if k != "latency_ms"}
        if "control_other" in copy:
            copy["control_other"] = {k: v for k, v in copy["control_other"].items() if k != "latency_ms"}
        stripped.append(copy)
    return stripped


Reply = tuple[int, dict[str, Any]]


def completion(text: str, *, prompt_tokens: int = 10, completion_tokens: int = 5) -> Reply:
    return 200, {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


class FakeLLM:
    """A scripted OpenAI-compatible server: `respond(body)` gives each reply; requests and peak concurrency
    are recorded."""

    def __init__(self, respond: Callable[[dict[str, Any]], Reply], *, delay: float = 0.0) -> None:
        self.respond = respond
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            status, reply = self.respond(body)
        finally:
            self.in_flight -= 1
        return web.json_response(reply, status=status)

    async def __aenter__(self) -> FakeLLM:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def calls_to(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["model"] == model]


def judge_prompt_parts(body: Mapping[str, Any]) -> simulator.JudgePrompt:
    """The responses a judge request shows as A and B."""
    prompt = simulator.parse_judge_prompt(judge.question_text(body["messages"]))
    assert prompt is not None, "not a judge prompt"
    return prompt

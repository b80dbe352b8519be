"""An OpenAI-compatible LLM simulator: named models of known quality, latency, error and 429 rates.

Tests, the demo and the benchmarks need models whose true quality is known, so that a qualification run
can be checked against the truth. The simulator serves such models over HTTP (`POST /v1/chat/completions`,
`GET /v1/models`, `GET /healthz`, `GET /stats`), deterministically under a seed:

- every prompt has one ideal answer, a function of the last user message's text alone (or the configured
  reference for that exact text), so two models answer a prompt identically whenever both answer ideally;
- a model with `quality` q gives the ideal answer with probability q per (seed, model, prompt), otherwise a
  degraded one (some sentences replaced by wrong ones or dropped), and the same request always gets the
  same answer, so a retried request is answered as the first one was;
- `verbosity` pads answers with filler sentences that add no facts;
- errors (500), rate limits (429 with Retry-After), latency jitter and invalid judge replies are drawn from
  a per-model request counter and the seed: a retry is a new draw, and a given request order replays the
  same sequence;
- a model with `role: judge` reads the blind pairwise prompt of `assay.qualification.judge`, scores each
  response by the share of the ideal answer's sentences it contains in order, and answers
  `{"verdict": "A" | "B" | "tie", "reason": ...}` with configurable position bias, length bias, noise,
  insensitivity and invalid replies.

Run it with `python -m assaylab.simulator --config sim.yaml --port 0` (the first line on stdout is the
bound URL), in-process with `SimulatorServer` (async) or `BackgroundSimulator` (a thread, for sync code).
Prompt and answer text is never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import importlib.resources
import json
import math
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal, Self, TypeVar

import pydantic
import yaml
from aiohttp import web

from assay.qualification import judge

DEMO_CONFIG_RESOURCE = "simulator-demo.yaml"
SERVER_NAME = "assay-llm-simulator"

# Facts are sentences "The <noun> <verb> the <noun> <preposition> <noun>.", words from fixed lists, so an
# answer's facts can be counted and a wrong sentence looks like a right one.
# fmt: off
NOUNS = (
    "cache", "replica", "shard", "index", "queue", "token", "budget", "schema", "gateway", "router",
    "rollback", "canary", "quota", "retry", "timeout", "cluster", "node", "volume", "secret", "policy",
    "metric", "alert", "dashboard", "trace", "batch", "stream", "buffer", "checkpoint", "snapshot", "lease",
    "lock", "leader", "partition", "quorum", "window", "sampler", "estimate", "margin", "baseline",
    "candidate", "prompt", "dataset", "record", "parser", "encoder", "vector", "route", "weight", "pool",
    "worker", "scheduler", "pipeline", "artifact", "registry", "manifest", "controller", "webhook", "event",
    "condition", "resource", "namespace", "label", "selector", "finalizer"
)
VERBS = (
    "limits", "protects", "delays", "feeds", "replaces", "tracks", "guards", "splits", "merges", "drains",
    "warms", "signs", "reads", "writes", "pins", "throttles", "mirrors", "rotates", "routes", "validates"
)
# fmt: on
PREPOSITIONS = ("before", "after", "behind", "inside", "across", "beside", "under", "within")
FILLER_SENTENCES = (
    "I hope this helps.",
    "Let me know if you have any other questions.",
    "This is a common question, and it is a good one to ask.",
    "There are several ways to look at this.",
    "In short, it depends on your situation.",
    "Feel free to ask for more details.",
    "It is worth thinking about this carefully.",
    "Happy to expand on any of these points.",
)
PROMPT_TEMPLATES = (
    "Explain how the {a} affects the {b} in a {c} setup.",
    "What should an engineer know about the {a} and the {b} when planning the {c}?",
    "Summarize what the {a} means for teams that run the {b} next to the {c}.",
    "List the trade-offs between the {a} and the {b} for the {c}.",
    "Why does the {a} matter when the {b} changes the {c}?",
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TERMINAL = (".", "!", "?", '."', ".)")
_INVALID_JUDGE_REPLY = "Both responses have their merits; it is hard to say which one is better here."


T = TypeVar("T")


class SimulatorConfigError(ValueError):
    """The simulator configuration is invalid; the message names the file and field."""


Probability = Annotated[float, pydantic.Field(ge=0.0, le=1.0)]
_LABELS: tuple[judge.Label, ...] = ("A", "B", "tie")


class ModelBehaviour(pydantic.BaseModel):
    """How one simulated model behaves. Probabilities are in [0, 1]."""

    model_config = pydantic.ConfigDict(extra="forbid")

    role: Literal["answer", "judge"] = pydantic.Field(
        "answer", description="answer: answers prompts; judge: also reads assay's blind pairwise prompts."
    )
    quality: Probability = pydantic.Field(1.0, description="Probability that an answer is the ideal one.")
    verbosity: float = pydantic.Field(
        1.0, ge=1.0, description="Length multiplier: 1.5 adds half as many filler sentences as facts."
    )
    latency_ms: float = pydantic.Field(0.0, ge=0.0, description="Mean latency of a successful reply.")
    latency_jitter_ms: float = pydantic.Field(0.0, ge=0.0, description="Uniform jitter around the mean.")
    ms_per_output_token: float = pydantic.Field(0.0, ge=0.0, description="Extra latency per output token.")
    error_rate: Probability = pydantic.Field(0.0, description="Share of requests answered HTTP 500.")
    rate_limit_rate: Probability = pydantic.Field(0.0, description="Share of requests answered HTTP 429.")
    retry_after_s: float = pydantic.Field(1.0, ge=0.0, description="Retry-After seconds sent with a 429.")
    position_bias: Probability = pydantic.Field(
        0.0, description="Judge: probability of answering A when the responses are close in quality."
    )
    length_bias: Probability = pydantic.Field(
        0.0, description="Judge: probability of preferring the longer response when they are close."
    )
    noise: Probability = pydantic.Field(0.0, description="Judge: probability of a uniformly random verdict.")
    insensitive: bool = pydantic.Field(False, description="Judge: cannot tell quality; verdicts are random.")
    invalid_rate: Probability = pydantic.Field(0.0, description="Judge: share of unparsable replies.")
    close_margin: float = pydantic.Field(
        0.0, ge=0.0, le=1.0, description="Judge: similarity differences up to this count as close."
    )


class SimulatorConfig(pydantic.BaseModel):
    """The simulated world: a seed, the models it serves, and reference answers for exact prompts."""

    model_config = pydantic.ConfigDict(extra="forbid")

    seed: int = 0
    models: dict[str, ModelBehaviour] = pydantic.Field(min_length=1)
    references: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Last user message text -> its ideal answer."
    )
    api_key: str | None = pydantic.Field(None, description="When set, requests must send this bearer token.")


def parse_config(data: SimulatorConfig | Mapping[str, Any] | None, *, source: str = "config") -> SimulatorConfig:
    """A validated SimulatorConfig from a mapping (None means the demo world)."""
    if data is None:
        return demo_config()
    if isinstance(data, SimulatorConfig):
        return data
    try:
        return SimulatorConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise SimulatorConfigError(f"{source}: invalid simulator config: {problems}") from exc


def load_config(path: str | Path) -> SimulatorConfig:
    """Read a simulator config from a YAML (or JSON) file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SimulatorConfigError(f"{path}: cannot read simulator config: {exc}") from exc
    if not isinstance(data, Mapping):
        raise SimulatorConfigError(f"{path}: a simulator config is a mapping with 'models'")
    return parse_config(data, source=str(path))


def demo_config() -> SimulatorConfig:
    """The demo world: gpt-4o (0.8), gpt-4o-mini (0.8), tiny-llm (0.35) and the judge judge-large."""
    text = importlib.resources.files("assaylab").joinpath("data", DEMO_CONFIG_RESOURCE).read_text()
    return parse_config(yaml.safe_load(text), source=f"assaylab/data/{DEMO_CONFIG_RESOURCE}")


# --- the simulated world: ideal answers, degraded answers, similarity -------------------------------------


def _digest(*parts: object) -> int:
    """A stable 64-bit integer for the parts (Python's hash() is salted per process)."""
    raw = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def _fact(rng: random.Random) -> str:
    noun_a, noun_b, noun_c = (rng.choice(NOUNS) for _ in range(3))
    return f"The {noun_a} {rng.choice(VERBS)} the {noun_b} {rng.choice(PREPOSITIONS)} the {noun_c}."


def ideal_answer(question: str, *, references: Mapping[str, str] | None = None) -> str:
    """The best possible answer to a question: the configured reference, else 3-5 facts drawn from its text."""
    if references and question in references:
        return references[question]
    rng = random.Random(_digest("ideal", question))
    return " ".join(_fact(rng) for _ in range(rng.randint(3, 5)))


def split_sentences(text: str) -> list[str]:
    """The text's sentences, split after '.', '!' or '?'."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _normalize(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if item == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def answer_similarity(response: str, ideal: str) -> float:
    """How much of the ideal answer the response gives, in [0, 1].

    The share of the ideal's sentences the response contains in the same order (filler and wrong
    sentences add nothing), less half a sentence when the response stops mid-sentence though the ideal
    does not: a judge notices a truncated answer.
    """
    ideal_sentences = [_normalize(s) for s in split_sentences(ideal)]
    if not ideal_sentences:
        return 1.0 if not response.strip() else 0.0
    matched = _lcs_length(ideal_sentences, [_normalize(s) for s in split_sentences(response)])
    score = matched / len(ideal_sentences)
    if ideal.rstrip().endswith(_TERMINAL) and not response.rstrip().endswith(_TERMINAL):
        score -= 0.5 / len(ideal_sentences)
    return max(0.0, score)


@dataclasses.dataclass(frozen=True)
class Answer:
    """A simulated model's answer and whether it is the ideal one (before filler)."""

    text: str
    ideal: bool


def model_answer(config: SimulatorConfig, model: str, question: str) -> Answer:
    """The answer `model` gives to `question`: the same text every time for the same seed."""
    behaviour = config.models[model]
    ideal = ideal_answer(question, references=config.references)
    rng = random.Random(_digest("answer", config.seed, model, question))
    is_ideal = rng.random() < behaviour.quality
    sentences = split_sentences(ideal)
    if not is_ideal:
        sentences = _degrade(sentences, rng, seed=config.seed, model=model, question=question)
    fillers = math.floor((behaviour.verbosity - 1.0) * len(sentences) + rng.random())
    if is_ideal and fillers == 0:
        return Answer(text=ideal, ideal=True)
    for _ in range(fillers):
        sentences.insert(rng.randint(0, len(sentences)), rng.choice(FILLER_SENTENCES))
    return Answer(text=" ".join(sentences), ideal=is_ideal)


def _degrade(sentences: list[str], rng: random.Random, *, seed: int, model: str, question: str) -> list[str]:
    """Replace or drop between one sentence and half of them: strictly less similar to the ideal."""
    count = len(sentences)
    known = {_normalize(s) for s in sentences}
    affected = set(rng.sample(range(count), rng.randint(1, max(1, math.ceil(count / 2)))))
    degraded: list[str] = []
    for index, sentence in enumerate(sentences):
        if index not in affected:
            degraded.append(sentence)
        elif rng.random() < 0.5:
            degraded.append(_wrong_fact(known, seed=seed, model=model, question=question, index=index))
    if not degraded:
        degraded.append(_wrong_fact(known, seed=seed, model=model, question=question, index=count))
    return degraded


def _wrong_fact(known: set[str], *, seed: int, model: str, question: str, index: int) -> str:
    rng = random.Random(_digest("wrong", seed, model, question, index))
    while True:
        fact = _fact(rng)
        if _normalize(fact) not in known:
            return fact


# --- the judge ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JudgePrompt:
    """The parts of assay's blind pairwise prompt the simulated judge reads back."""

    question: str
    reference: str | None
    response_a: str
    response_b: str


def _section(text: str, start: str, end: str) -> str | None:
    opening = text.find(start + "\n")
    if opening < 0:
        return None
    body_start = opening + len(start) + 1
    closing = text.find("\n" + end, body_start)
    return text[body_start:closing] if closing >= 0 else None


def parse_judge_prompt(text: str) -> JudgePrompt | None:
    """The question, reference and both responses of a judge prompt; None when it is not one."""
    question = _section(text, judge.QUESTION_START, judge.QUESTION_END)
    response_a = _section(text, judge.RESPONSE_A_START, judge.RESPONSE_A_END)
    response_b = _section(text, judge.RESPONSE_B_START, judge.RESPONSE_B_END)
    if question is None or response_a is None or response_b is None:
        return None
    reference = _section(text, judge.REFERENCE_START, judge.REFERENCE_END)
    return JudgePrompt(question=question, reference=reference, response_a=response_a, response_b=response_b)


@dataclasses.dataclass(frozen=True)
class JudgeReply:
    """The judge's reply text and the label it carries (None for an invalid reply)."""

    text: str
    label: judge.Label | None


def judge_reply(config: SimulatorConfig, model: str, prompt: JudgePrompt, *, invalid_draw: float = 1.0) -> JudgeReply:
    """The verdict `model` gives on a pairwise prompt.

    The verdict is a function of (seed, model, prompt), so re-asking gives the same verdict; only invalid
    replies come from `invalid_draw`, a per-request draw, so a retried invalid reply can succeed.
    """
    behaviour = config.models[model]
    if invalid_draw < behaviour.invalid_rate:
        return JudgeReply(text=_INVALID_JUDGE_REPLY, label=None)
    rng = random.Random(
        _digest("judge", config.seed, model, prompt.question, prompt.reference, prompt.response_a, prompt.response_b)
    )
    noise_draw, random_label, position_draw, length_draw = rng.random(), rng.choice(_LABELS), rng.random(), rng.random()
    label: judge.Label
    if behaviour.insensitive:
        label, reason = random_label, "Both responses seem reasonable."
    elif noise_draw < behaviour.noise:
        label, reason = random_label, "On balance this one reads better."
    else:
        ideal = prompt.reference or ideal_answer(prompt.question, references=config.references)
        score_a = answer_similarity(prompt.response_a, ideal)
        score_b = answer_similarity(prompt.response_b, ideal)
        longer: judge.Label | None = None
        if len(prompt.response_a) != len(prompt.response_b):
            longer = "A" if len(prompt.response_a) > len(prompt.response_b) else "B"
        if abs(score_a - score_b) > behaviour.close_margin:
            label, reason = ("A" if score_a > score_b else "B"), "It covers more of what the question needs."
        elif longer is not None and length_draw < behaviour.length_bias:
            label, reason = longer, "It is more detailed."
        elif position_draw < behaviour.position_bias:
            label, reason = "A", "It answers the question well."
        elif score_a == score_b:
            label, reason = "tie", "Both responses cover the same points."
        else:
            label, reason = ("A" if score_a > score_b else "B"), "It is slightly more complete."
    return JudgeReply(text=json.dumps({"verdict": label, "reason": reason}), label=label)


# --- tokens and datasets -----------------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """A deterministic token count: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def _content_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens: the content of every message plus three tokens of framing each, as OpenAI counts."""
    return sum(count_tokens(_content_text(m)) + 3 for m in messages) + 3


def make_dataset(n: int, *, seed: int, with_references: bool = False) -> list[dict[str, Any]]:
    """n distinct synthetic records in the evaluator's dataset format, the same for the same seed."""
    capacity = len(PROMPT_TEMPLATES) * len(NOUNS) * (len(NOUNS) - 1) * (len(NOUNS) - 2)
    if not 0 <= n <= capacity // 2:
        raise ValueError(f"n: make_dataset makes between 0 and {capacity // 2} distinct prompts, not {n}")
    rng = random.Random(_digest("dataset", seed))
    seen: set[str] = set()
    records: list[dict[str, Any]] = []
    while len(records) < n:
        template_index = rng.randrange(len(PROMPT_TEMPLATES))
        topic, other, third = rng.sample(NOUNS, 3)
        text = PROMPT_TEMPLATES[template_index].format(a=topic, b=other, c=third)
        if text in seen:
            continue
        seen.add(text)
        record: dict[str, Any] = {
            "id": f"sim-{seed}-{len(records):05d}",
            "messages": [{"role": "user", "content": text}],
            "metadata": {"template": template_index, "topic": topic, "generator": SERVER_NAME},
        }
        if with_references:
            record["reference"] = ideal_answer(text)
        records.append(record)
    return records


# --- the HTTP server ---------------------------------------------------------------------------------------


def system_message_digest(messages: Sequence[Mapping[str, Any]]) -> str:
    """sha256 (12 hex digits) of the first message's content when it is a system message, else "none"."""
    if not messages or messages[0].get("role") != "system":
        return "none"
    content = messages[0].get("content")
    text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclasses.dataclass
class ModelStats:
    """What one simulated model has been asked and has answered."""

    requests: int = 0
    completions: int = 0
    errors: int = 0
    rate_limited: int = 0
    ideal_answers: int = 0
    degraded_answers: int = 0
    verdicts: dict[str, int] = dataclasses.field(default_factory=lambda: {"A": 0, "B": 0, "tie": 0, "invalid": 0})
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Requests by the sha256 (first 12 hex digits) of their first system message ("none" without one): which
    # prompt a model was called under, with no text kept.
    system_messages: dict[str, int] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["total_tokens"] = self.prompt_tokens + self.completion_tokens
        return data


def _error(
    status: int,
    message: str,
    *,
    kind: str,
    code: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _bad_request(message: str, *, param: str | None = None) -> web.Response:
    return _error(400, message, kind="invalid_request_error", code="invalid_request", param=param)


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class Simulator:
    """The simulated models and their counters, as an aiohttp application (`app`)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.model_stats: dict[str, ModelStats] = {name: ModelStats() for name in config.models}
        self.unknown_model_requests = 0
        self.unauthorized_requests = 0
        self._sequence = 0
        self.app = web.Application()
        for path in ("/v1/chat/completions", "/chat/completions"):
            self.app.router.add_post(path, self._chat_completions)
        for path in ("/v1/models", "/models"):
            self.app.router.add_get(path, self._models)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/stats", self._stats)

    def stats(self) -> dict[str, Any]:
        """Counters per model, plus requests for unknown models and requests without the API key."""
        return {
            "models": {name: s.as_dict() for name, s in self.model_stats.items()},
            "unknown_model_requests": self.unknown_model_requests,
            "unauthorized_requests": self.unauthorized_requests,
        }

    def set_quality(self, model: str, quality: float) -> None:
        """Change a model's quality from now on, as a provider silently updating it would (answers already
        given are not changed; the same question is answered from the same draw, so a drop is monotone)."""
        if model not in self.config.models:
            raise SimulatorConfigError(f"set_quality: no model {model!r} (models: {', '.join(self.config.models)})")
        behaviour = self.config.models[model].model_copy(update={"quality": quality})
        self.config = self.config.model_copy(update={"models": {**self.config.models, model: behaviour}})

    def reset_stats(self) -> None:
        """Zero every counter, and restart the per-model request sequences that errors are drawn from."""
        self.model_stats = {name: ModelStats() for name in self.config.models}
        self.unknown_model_requests = 0
        self.unauthorized_requests = 0

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": SERVER_NAME} for name in self.config.models]
        return web.json_response({"object": "list", "data": data})

    def _authorized(self, request: web.Request) -> bool:
        if self.config.api_key is None:
            return True
        return request.headers.get("Authorization", "") == f"Bearer {self.config.api_key}"

    async def _chat_completions(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.unauthorized_requests += 1
            return _error(
                401,
                "Incorrect API key provided: send 'Authorization: Bearer <api_key>'.",
                kind="invalid_request_error",
                code="invalid_api_key",
            )
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _bad_request("The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _bad_request("The request body must be a JSON object.")
        if body.get("stream"):
            return _bad_request("stream: true is not supported by the simulator; send stream: false.", param="stream")
        if body.get("n", 1) not in (1, None):
            return _bad_request("n: only one choice per request is supported.", param="n")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _bad_request("model: a model name is required.", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _bad_request("messages: a non-empty list of message objects is required.", param="messages")
        behaviour = self.config.models.get(model)
        if behaviour is None:
            self.unknown_model_requests += 1
            return _error(
                404,
                f"The model '{model}' does not exist; GET /v1/models lists the served models.",
                kind="invalid_request_error",
                code="model_not_found",
                param="model",
            )

        stats = self.model_stats[model]
        stats.requests += 1
        system = system_message_digest(messages)
        stats.system_messages[system] = stats.system_messages.get(system, 0) + 1
        # Per-request draws in a fixed order: a retry is a new draw, a replayed request order the same one.
        draws = random.Random(_digest("request", self.config.seed, model, stats.requests))
        rate_limit_draw, error_draw, invalid_draw, jitter_draw = (draws.random() for _ in range(4))
        if rate_limit_draw < behaviour.rate_limit_rate:
            stats.rate_limited += 1
            retry_after = behaviour.retry_after_s
            headers = {"Retry-After": _seconds_header(retry_after), "retry-after-ms": str(round(retry_after * 1000))}
            return _error(
                429,
                f"Rate limit reached for {model}; retry after {retry_after:g} s.",
                kind="rate_limit_error",
                code="rate_limit_exceeded",
                headers=headers,
            )
        if error_draw < behaviour.error_rate:
            stats.errors += 1
            return _error(
                500,
                "The simulated server had an error while processing your request.",
                kind="server_error",
                code="simulated_error",
            )

        content = self._reply(model, behaviour, messages, invalid_draw=invalid_draw)
        finish_reason = "stop"
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0 and count_tokens(content) > max_tokens:
            content, finish_reason = content[: max_tokens * 4], "length"
        usage_prompt, usage_completion = prompt_tokens(messages), count_tokens(content)
        latency_ms = behaviour.latency_ms + behaviour.latency_jitter_ms * (2 * jitter_draw - 1)
        latency_ms += behaviour.ms_per_output_token * usage_completion
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        stats.completions += 1
        stats.prompt_tokens += usage_prompt
        stats.completion_tokens += usage_completion
        self._sequence += 1
        return web.json_response(
            {
                "id": f"chatcmpl-sim-{self._sequence}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": SERVER_NAME,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": usage_prompt,
                    "completion_tokens": usage_completion,
                    "total_tokens": usage_prompt + usage_completion,
                },
            }
        )

    def _reply(
        self, model: str, behaviour: ModelBehaviour, messages: list[dict[str, Any]], *, invalid_draw: float
    ) -> str:
        stats = self.model_stats[model]
        question = judge.question_text(messages)
        if behaviour.role == "judge" and (prompt := parse_judge_prompt(question)) is not None:
            reply = judge_reply(self.config, model, prompt, invalid_draw=invalid_draw)
            stats.verdicts[reply.label or "invalid"] += 1
            return reply.text
        answer = model_answer(self.config, model, question)
        if answer.ideal:
            stats.ideal_answers += 1
        else:
            stats.degraded_answers += 1
        return answer.text


class SimulatorServer:
    """The simulator on a local port, in the running event loop: `async with SimulatorServer(cfg) as sim:`.

    `url` is the server root (`http://127.0.0.1:PORT`); OpenAI clients take `base_url` (`<url>/v1`).
    """

    def __init__(
        self,
        config: SimulatorConfig | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reuse_port: bool = False,
    ) -> None:
        self.simulator = Simulator(parse_config(config))
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return self._url

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `<url>/v1`."""
        return f"{self.url}/v1"

    def stats(self) -> dict[str, Any]:
        """The same counters as GET /stats."""
        return self.simulator.stats()

    async def start(self) -> str:
        """Bind and serve; returns the URL. Port 0 (the default) picks a free port."""
        runner = web.AppRunner(self.simulator.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_port=self._reuse_port or None)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        return self._url

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class BackgroundSimulator:
    """The simulator in a background thread with its own event loop, for synchronous code and tests.

    `with BackgroundSimulator(cfg) as sim: httpx.post(f"{sim.url}/v1/chat/completions", ...)`.
    """

    def __init__(
        self,
        config: SimulatorConfig | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.server = SimulatorServer(config, host=host, port=port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the simulator is not running: call start() first")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def stats(self) -> dict[str, Any]:
        """The same counters as GET /stats, read on the server's loop."""

        async def snapshot() -> dict[str, Any]:
            return self.server.stats()

        return self._call(snapshot())

    def set_quality(self, model: str, quality: float) -> None:
        """Change a model's quality at runtime (Simulator.set_quality), on the server's loop."""

        async def change() -> None:
            self.server.simulator.set_quality(model, quality)

        self._call(change())

    def start(self) -> str:
        """Start the thread and the server; returns the URL."""
        if self._loop is not None:
            return self.url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=SERVER_NAME, daemon=True)
        self._thread.start()
        return self._call(self.server.start())

    def stop(self) -> None:
        """Stop the server and the thread; idempotent."""
        if self._loop is None or self._thread is None:
            return
        self._call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop, self._thread = None, None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _serve(config: SimulatorConfig, *, host: str, port: int, reuse_port: bool) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with SimulatorServer(config, host=host, port=port, reuse_port=reuse_port) as server:
        print(server.url, flush=True)
        models = ", ".join(f"{name} ({b.role})" for name, b in config.models.items())
        print(f"serving {models}; OpenAI base URL {server.base_url}", file=sys.stderr, flush=True)
        await stopping.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m assaylab.simulator`: serve until SIGINT/SIGTERM; stdout's first line is the URL."""
    parser = argparse.ArgumentParser(prog="python -m assaylab.simulator", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", type=Path, help="simulator YAML (default: the built-in demo world)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT, so several simulator processes can serve one port (each counts its own stats)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else demo_config()
    except SimulatorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, host=args.host, port=args.port, reuse_port=args.reuse_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

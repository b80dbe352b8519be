"""A world where a small model's quality depends on its instructions (issue 11, item 5; pure, deterministic).

Each record is of one prompt kind (math, json, summary, code). A model answers a record well with a probability
that depends on the kind and on the instruction phrases in its system prompt: some help the small model on one
kind ("Give only the final answer." on math), some hurt ("Think step by step." on math and json: chain of
thought does not transfer down), most do nothing elsewhere. Whether an answer is good is a function of
(model, prompt, record id) alone, so every call with the same inputs gives the same answer. A fair judge
prefers a good answer to a poor one and ties answers of equal quality: a pair's expected score is
0.5 + (q_candidate - q_baseline) / 2.

`answer`, `judge_verdict` and `propose` are the fakes a unit test wires in for the candidate and baseline
models, the blind judge and the reflection model of the optimizer. The simulator integration comes later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence

KINDS = ("math", "json", "summary", "code")


@dataclasses.dataclass(frozen=True)
class Phrase:
    """An instruction phrase, the kind it seems to be about ("general": any), and its effect on the small
    model's chance of a good answer per kind."""

    text: str
    topic: str
    effect: Mapping[str, float]


PHRASES: tuple[Phrase, ...] = (
    Phrase("Think step by step.", "general", {"math": -0.2, "json": -0.2, "summary": -0.1}),
    Phrase("You are a helpful assistant.", "general", {}),
    Phrase("Give only the final answer.", "math", {"math": 0.45}),
    Phrase("Show your reasoning in detail.", "math", {"math": -0.1, "json": -0.1}),
    Phrase("Reply with valid JSON only.", "json", {"json": 0.5}),
    Phrase("Explain the JSON fields in prose first.", "json", {"json": -0.2}),
    Phrase("Use at most three sentences.", "summary", {"summary": 0.45}),
    Phrase("Cover every detail of the text.", "summary", {"summary": -0.15}),
    Phrase("Include a short runnable example.", "code", {"code": 0.45}),
)
# The chance of a good answer with no instructions.
QUALITY: Mapping[str, Mapping[str, float]] = {
    "small": dict.fromkeys(KINDS, 0.4),
    "large": dict.fromkeys(KINDS, 0.7),
}
AS_WRITTEN = "You are a helpful assistant. Think step by step."
_KIND = re.compile(r"\[(" + "|".join(KINDS) + r")\]")


def quality(model: str, prompt: str | None, kind: str) -> float:
    """The chance that `model` answers a record of `kind` well under `prompt`; only the small model listens."""
    q = QUALITY[model][kind]
    if model == "small" and prompt:
        q += sum(p.effect.get(kind, 0.0) for p in PHRASES if p.text in prompt)
    return min(max(q, 0.02), 0.98)


def expected_score(prompt: str | None, kind: str, *, candidate: str = "small", baseline: str = "large") -> float:
    """The candidate's expected pair score against the baseline on a record of `kind`."""
    return 0.5 + (quality(candidate, prompt, kind) - quality(baseline, None, kind)) / 2


def kind_of(text: str) -> str:
    """The kind a question is tagged with ("[math] ..."); records are built with `question`."""
    found = _KIND.search(text)
    if found is None:
        raise ValueError("a question of this world starts with its kind in brackets, e.g. [math]")
    return found.group(1)


def question(kind: str, index: int) -> str:
    return f"[{kind}] question {index}"


def _uniform(*parts: str) -> float:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def answer(model: str, prompt: str | None, record_id: str, kind: str) -> str:
    """The model's answer: good or poor, drawn once per (model, prompt, record); the same for every call."""
    good = _uniform("answer", model, prompt or "", record_id) < quality(model, prompt, kind)
    return f"{'good' if good else 'poor'} answer to {record_id}"


def judge_verdict(response_a: str, response_b: str) -> str:
    """A fair judge: the good answer wins, equal quality is a tie ("A", "B" or "tie")."""
    a, b = response_a.startswith("good"), response_b.startswith("good")
    return "tie" if a == b else "A" if a else "B"


def propose(current: str, lost_questions: Sequence[str], *, salt: str = "") -> str:
    """A reflection model's edit: for the kind lost most often, add a phrase about it that the prompt lacks, or
    drop a general phrase; which one is a function of the inputs (it may well pick one that hurts)."""
    counts: dict[str, int] = {}
    for text in lost_questions:
        kind = kind_of(text)
        counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return current
    worst = max(sorted(counts), key=lambda k: counts[k])
    adds = [p.text for p in PHRASES if p.topic == worst and p.text not in current]
    drops = [p.text for p in PHRASES if p.topic == "general" and p.text in current]
    options = [("add", t) for t in adds] + [("drop", t) for t in drops]
    if not options:
        return current
    action, text = options[int(_uniform("propose", salt, current, *lost_questions) * len(options))]
    if action == "add":
        return f"{current} {text}".strip()
    return " ".join(current.replace(text, " ").split())

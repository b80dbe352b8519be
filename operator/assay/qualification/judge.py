"""The blind pairwise judge protocol: the prompt assay sends and the verdict it accepts.

The judge never sees model names. It sees the user's question (and earlier turns), optionally a reference
answer, and two responses labelled only "Response A" and "Response B". It must answer with one of A, B or
tie. Each pair is judged twice with the order swapped, so position bias cancels in the score and shows up
in swap consistency instead of in the estimate.

This module is pure: it builds messages and parses text. The evaluator does the HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Literal

Label = Literal["A", "B", "tie"]
Winner = Literal["candidate", "baseline", "tie", "invalid"]

# Section markers are stable: the LLM simulator's judge parses them back (assaylab.simulator).
QUESTION_START = "[Question]"
QUESTION_END = "[End of Question]"
CONTEXT_START = "[Earlier conversation]"
CONTEXT_END = "[End of earlier conversation]"
REFERENCE_START = "[Reference answer]"
REFERENCE_END = "[End of reference answer]"
RESPONSE_A_START = "[Response A]"
RESPONSE_A_END = "[End of Response A]"
RESPONSE_B_START = "[Response B]"
RESPONSE_B_END = "[End of Response B]"

DEFAULT_RUBRIC = (
    "Judge which response better answers the user's question: correctness first, then completeness and "
    "following the user's instructions. Length is not quality: do not prefer a response for being longer "
    "or more detailed unless the extra content is needed. The order in which the responses are shown is "
    "arbitrary. If they are of equal quality, answer tie."
)

SYSTEM_PROMPT = (
    "You are an impartial evaluator comparing two AI assistant responses to the same user question. "
    "You do not know which systems wrote them.\n\n"
    "{rubric}\n\n"
    'Reply with a JSON object only: {{"verdict": "A" | "B" | "tie", "reason": "<one sentence>"}}'
)


def _render_message(message: Mapping[str, object]) -> str:
    content = message.get("content", "")
    if not isinstance(content, str):
        # OpenAI content parts: keep the text parts, in order.
        parts = content if isinstance(content, list) else []
        content = "\n".join(str(p.get("text", "")) for p in parts if isinstance(p, Mapping) and p.get("type") == "text")
    return f"{message.get('role', 'user')}: {content}"


def question_text(messages: Sequence[Mapping[str, object]]) -> str:
    """The last user turn's text: what the judge is asked to judge answers to."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _render_message(message).split(": ", 1)[1]
    return ""


def build_judge_messages(
    messages: Sequence[Mapping[str, object]],
    response_a: str,
    response_b: str,
    *,
    reference: str | None = None,
    rubric: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking the judge to compare response A with response B, blind."""
    question = question_text(messages)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages))
    context = [m for i, m in enumerate(messages) if i != last_user]
    blocks: list[str] = []
    if context:
        rendered = "\n".join(_render_message(m) for m in context)
        blocks.append(f"{CONTEXT_START}\n{rendered}\n{CONTEXT_END}")
    blocks.append(f"{QUESTION_START}\n{question}\n{QUESTION_END}")
    if reference:
        blocks.append(f"{REFERENCE_START}\n{reference}\n{REFERENCE_END}")
    blocks.append(f"{RESPONSE_A_START}\n{response_a}\n{RESPONSE_A_END}")
    blocks.append(f"{RESPONSE_B_START}\n{response_b}\n{RESPONSE_B_END}")
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(rubric=rubric or DEFAULT_RUBRIC)},
        {"role": "user", "content": "\n\n".join(blocks)},
    ]


_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_VERDICT_LINE = re.compile(r"verdict\W{0,5}(\"?)(A|B|tie)\1\b", re.IGNORECASE)
_BRACKETED = re.compile(r"\[\[(A|B|tie|C)\]\]", re.IGNORECASE)


def _label(value: object) -> Label | None:
    if not isinstance(value, str):
        return None
    token = value.strip().strip('"').strip().lower()
    if token in {"a", "response a"}:
        return "A"
    if token in {"b", "response b"}:
        return "B"
    if token in {"tie", "c", "equal", "draw"}:
        return "tie"
    return None


def parse_verdict(text: str) -> Label | None:
    """The judge's label, or None when the reply cannot be read unambiguously.

    Accepts a JSON object with a "verdict" key (the format asked for), a line "verdict: A", or the MT-Bench
    style "[[A]]" / "[[B]]" / "[[C]]". Anything else, including replies that name two different labels, is
    None: the caller retries once and then records the pair as invalid, never as a silent tie.
    """
    found: set[Label] = set()
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and (label := _label(obj.get("verdict"))):
            found.add(label)
    if not found:
        for match in _VERDICT_LINE.finditer(text):
            if label := _label(match.group(2)):
                found.add(label)
    if not found:
        for match in _BRACKETED.finditer(text):
            if label := _label(match.group(1)):
                found.add(label)
    return found.pop() if len(found) == 1 else None


def winner(label: Label | None, *, candidate_is: Literal["A", "B"]) -> Winner:
    """De-anonymize a label: which side the judge preferred."""
    if label is None:
        return "invalid"
    if label == "tie":
        return "tie"
    return "candidate" if label == candidate_is else "baseline"

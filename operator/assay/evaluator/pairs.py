"""One position of the sequence evaluated into one evidence record.

A pair: call the candidate and the baseline (or replay the recorded baseline answer), check agreement,
else ask the blind judge in both orders; check the format of both answers. A control: the candidate slot
holds a degraded copy of the baseline answer, no candidate call, and the judge is always asked (a control
exists to test the judge).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from assay.api import evaluation, qualificationrun
from assay.evaluator import agreement, calls, dataset, formats, plan
from assay.qualification import fingerprint, judge

log = logging.getLogger("assay.evaluator")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The de-anonymized winner of one judge order and the calls it took (2 when the first was unparsable)."""

    winner: judge.Winner
    completions: tuple[calls.Completion, ...]


def apply_system_prompt(messages: Sequence[Mapping[str, Any]], prompt: str | None) -> list[dict[str, Any]]:
    """The messages as the gateway sends them to an arm serving under `prompt`, so the qualification measures
    exactly what a promotion serves. The app's own system message is kept, with the prompt merged in front of it:
    LiteLLM's `litellm_system_prompt` (litellm_core_utils add_system_prompt_to_messages with
    merge_with_first_system, 1.108.7): the first message, when it is a system message, becomes
    "<prompt stripped>\n\n<its text>" (a text part in front of a content list); otherwise the prompt, as is, is
    sent as a new first system message."""
    out = [dict(m) for m in messages]
    if not prompt:
        return out
    if out and out[0].get("role") == "system":
        content = out[0].get("content", "")
        if isinstance(content, str):
            out[0]["content"] = f"{prompt.strip()}\n\n{content}"
        elif isinstance(content, list):
            out[0]["content"] = [{"type": "text", "text": prompt.strip()}, *content]
        else:
            out[0]["content"] = [{"type": "text", "text": prompt.strip()}]
        return out
    return [{"role": "system", "content": prompt}, *out]


def _with_system_prompt(route: evaluation.ModelRoute, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return apply_system_prompt(messages, route.system_prompt)


def _sum_tokens(completions: Iterable[calls.Completion]) -> dict[str, int | None] | None:
    """Summed usage of several calls; a side no call reported stays None; None when there were no calls."""
    items = list(completions)
    if not items:
        return None
    totals: dict[str, int | None] = {}
    for side in ("prompt", "completion"):
        reported = [c.tokens()[side] for c in items if c.tokens()[side] is not None]
        totals[side] = sum(v for v in reported if v is not None) if reported else None
    return totals


def _mean_latency(completions: Sequence[calls.Completion]) -> float | None:
    """Mean latency of the calls (ms), None when there were none."""
    measured = [c.latency_ms for c in completions if c.latency_ms is not None]
    return round(sum(measured) / len(measured), 1) if measured else None


@dataclasses.dataclass
class Counters:
    """What this process did, for logs, the shard status and the benchmark (never text)."""

    judge_calls: int = 0
    judge_calls_saved: int = 0
    retries: int = 0
    pairs: int = 0
    controls: int = 0

    def on_retry(self, attempt: int, cause: str) -> None:
        self.retries += 1


class PairEvaluator:
    """Evaluates slots of the plan for one shard of one run."""

    def __init__(
        self,
        spec: qualificationrun.QualificationRunSpec,
        *,
        endpoint: calls.ChatEndpoint,
        judge_endpoint: calls.ChatEndpoint,
        format_check: formats.FormatCheck,
        shard: int,
        counters: Counters,
        log_text: bool = False,
    ) -> None:
        self._spec = spec
        self._endpoint = endpoint
        self._judge = judge_endpoint
        self._format = format_check
        self._shard = shard
        self._counters = counters
        self._log_text = log_text

    async def _baseline(self, record: dataset.Record, *, priority: int) -> tuple[calls.Completion, bool]:
        """The baseline's answer and whether it was replayed from the record."""
        if record.baseline_response is not None:
            return calls.Completion(text=record.baseline_response), True
        messages = _with_system_prompt(self._spec.baseline, record.messages)
        return await self._endpoint.complete(
            self._spec.baseline.model, messages, record_id=record.id, priority=priority
        ), False

    async def _candidate(self, record: dataset.Record, *, priority: int) -> calls.Completion:
        messages = _with_system_prompt(self._spec.candidate, record.messages)
        return await self._endpoint.complete(
            self._spec.candidate.model, messages, record_id=record.id, priority=priority
        )

    async def _judge_order(
        self,
        record: dataset.Record,
        *,
        candidate: str,
        baseline: str,
        candidate_is: Literal["A", "B"],
        priority: int,
    ) -> Verdict:
        first, second = (candidate, baseline) if candidate_is == "A" else (baseline, candidate)
        messages = judge.build_judge_messages(
            record.messages, first, second, reference=record.reference, rubric=self._spec.judge.rubric
        )
        made: list[calls.Completion] = []
        label: judge.Label | None = None
        for attempt in (1, 2):  # an unparsable verdict is asked once more, then recorded as invalid
            reply = await self._judge.complete(self._spec.judge.model, messages, record_id=record.id, priority=priority)
            made.append(reply)
            label = judge.parse_verdict(reply.text)
            if label is not None:
                break
            if self._log_text:
                log.debug("record %s: unparsable judge reply (attempt %d): %r", record.id, attempt, reply.text)
            else:
                log.debug(
                    "record %s: unparsable judge reply (attempt %d, %d chars)", record.id, attempt, len(reply.text)
                )
        return Verdict(winner=judge.winner(label, candidate_is=candidate_is), completions=tuple(made))

    async def evaluate(self, slot: plan.Slot) -> dict[str, Any]:
        """The evidence record of one slot. Raises CallRejected / ModelCallFailed when a call finally fails."""
        record = slot.record
        extras: dict[str, Any] = {}
        candidate_call: calls.Completion | None = None
        control_kind: plan.ControlKind | None = None
        if slot.control_kind is not None:
            (baseline, replayed), other = await asyncio.gather(
                self._baseline(record, priority=slot.seq),
                self._baseline(slot.other, priority=slot.seq) if slot.other else _none(),
            )
            candidate_text, control_kind = plan.degrade(
                baseline.text,
                slot.control_kind,
                seed=self._spec.test.seed,
                position=slot.seq,
                other_text=other[0].text if other else None,
            )
            if control_kind == "other" and slot.other is not None and other is not None:
                extras["control_other"] = {
                    "id": slot.other.id,
                    "tokens": None if other[1] else other[0].tokens(),
                    "latency_ms": other[0].latency_ms,
                }
            self._counters.controls += 1
        else:
            (baseline, replayed), called = await asyncio.gather(
                self._baseline(record, priority=slot.seq), self._candidate(record, priority=slot.seq)
            )
            candidate_call, candidate_text = called, called.text
            self._counters.pairs += 1
        return await self._judged(
            record,
            seq=slot.seq,
            control=slot.control,
            baseline=baseline,
            replayed=replayed,
            candidate_call=candidate_call,
            candidate_text=candidate_text,
            control_kind=control_kind,
            extras=extras,
        )

    async def evaluate_served(self, record: dataset.Record, served: calls.Completion, *, seq: int) -> dict[str, Any]:
        """The evidence record of a live sample (assay.watch): the candidate's answer is the one the gateway
        served, the baseline is called (or replayed) and the pair is checked and judged exactly as in `evaluate`.
        Raises CallRejected / ModelCallFailed when a call finally fails."""
        baseline, replayed = await self._baseline(record, priority=seq)
        self._counters.pairs += 1
        return await self._judged(
            record,
            seq=seq,
            control=False,
            baseline=baseline,
            replayed=replayed,
            candidate_call=served,
            candidate_text=served.text,
            control_kind=None,
            extras={},
        )

    async def _judged(
        self,
        record: dataset.Record,
        *,
        seq: int,
        control: bool,
        baseline: calls.Completion,
        replayed: bool,
        candidate_call: calls.Completion | None,
        candidate_text: str,
        control_kind: plan.ControlKind | None,
        extras: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Agreement, else the blind judge in both orders, and the format checks: the evidence record."""
        agreed = None if control else agreement.check(baseline.text, candidate_text)
        verdicts: list[Verdict] = []
        if agreed is None:
            verdicts = list(
                await asyncio.gather(
                    self._judge_order(
                        record, candidate=candidate_text, baseline=baseline.text, candidate_is="A", priority=seq
                    ),
                    self._judge_order(
                        record, candidate=candidate_text, baseline=baseline.text, candidate_is="B", priority=seq
                    ),
                )
            )
        else:
            self._counters.judge_calls_saved += 2
        judge_completions = [c for v in verdicts for c in v.completions]
        self._counters.judge_calls += len(judge_completions)
        return {
            "seq": seq,
            "id": record.id,
            "control": control,
            "agreement": agreed,
            "judge": (
                {"candidate_first": verdicts[0].winner, "baseline_first": verdicts[1].winner} if verdicts else None
            ),
            "chars": {"baseline": len(baseline.text), "candidate": len(candidate_text)},
            # Near-duplicate candidate answers across prompts are the mark of a prompt-independent exploit.
            "fingerprint": {
                "baseline": fingerprint.simhash(baseline.text),
                "candidate": fingerprint.simhash(candidate_text),
            },
            "format_ok": {
                "baseline": self._format.check(baseline.text),
                "candidate": self._format.check(candidate_text),
            },
            "control_kind": control_kind,
            "judge_calls": len(judge_completions),
            "tokens": {
                "baseline": None if replayed else baseline.tokens(),
                "candidate": candidate_call.tokens() if candidate_call else None,
                "judge": _sum_tokens(judge_completions),
            },
            "latency_ms": {
                "baseline": baseline.latency_ms,
                "candidate": candidate_call.latency_ms if candidate_call else None,
                "judge": _mean_latency(judge_completions),
            },
            "replayed_baseline": replayed,
            "shard": self._shard,
            **extras,
        }


async def _none() -> None:
    return None

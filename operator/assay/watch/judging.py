"""One live sample judged against the last known good baseline, through the evaluator's own pair code.

The sample's answer is the one the gateway served on the promoted arm; the baseline (spec.baseline: model and
prompt, the route's last known good) is called with the same messages, and the pair goes through
`assay.evaluator.pairs.PairEvaluator.evaluate_served`: agreement checks, then the blind judge in both orders,
exactly as in qualification. The score the detector sees is the qualification's position-corrected score
(`decision.tested_score`). A failed call or an unreadable verdict is a judge error, never a score: an unreliable
judge must raise "not watched", not a false rollback. Calls carry the `assay-watch` tag, so the gateway's sampler
never samples them. Text lives only in this call's frames; nothing here logs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assay import httpclient
from assay.api import qualificationrun, routepolicy
from assay.controllers import policy_runs
from assay.evaluator import calls, dataset, errors, formats, pairs
from assay.qualification import cost, decision, evidence
from assay.watch import litellm_sampler

# Calls assay makes for the watch carry this tag, which the LiteLLM sampler never samples.
CALL_METADATA: Mapping[str, Any] = {"tags": [litellm_sampler.ASSAY_TAG]}
RETRY = httpclient.RetryPolicy(max_attempts=3)


@dataclasses.dataclass(frozen=True)
class Sample:
    """A served request of the promoted arm, as the sampler delivered it. Held only while it is judged."""

    namespace: str
    policy: str
    group: str
    messages: list[dict[str, Any]]
    response: str
    usage: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:  # never the text, not even in a traceback's locals
        return f"Sample({self.namespace}/{self.policy}, group={self.group!r}, {len(self.messages)} messages)"


@dataclasses.dataclass(frozen=True)
class Judged:
    """The pair's score (None: a judge error), what watching it cost, and why it failed (no text)."""

    score: float | None
    cost_usd: float
    error: str | None = None


SecretReader = Callable[..., str]


def run_spec(
    spec: routepolicy.RoutePolicySpec, candidate: str, *, policy_name: str
) -> qualificationrun.QualificationRunSpec:
    """The QualificationRunSpec the candidate was qualified under: the same baseline, judge, rubric and format."""
    index = next(i for i, c in enumerate(spec.candidates) if c.name == candidate)
    return qualificationrun.QualificationRunSpec.model_validate(
        policy_runs.run_spec(spec, index, policy_name=policy_name)
    )


def score_of(record: Mapping[str, Any], *, margin: float) -> float | None:
    """The position-corrected score of an evidence record; None when a verdict was unreadable."""
    parsed = evidence.from_dict(record)
    if parsed.judge is not None and "invalid" in (parsed.judge.candidate_first, parsed.judge.baseline_first):
        return None
    return decision.tested_score(parsed, margin)


def cost_of(record: Mapping[str, Any], run: qualificationrun.QualificationRunSpec) -> float:
    """USD the watch spent on this pair: the baseline call and the judge calls (the served answer was the app's)."""
    prices = cost.price_table(run.pricing)
    tokens = record.get("tokens") or {}
    total = 0.0
    for side, model in (("baseline", run.baseline.model), ("judge", run.judge.model)):
        used = tokens.get(side)
        if not used:
            continue
        priced = cost.per_request(
            [{"tokens": {"baseline": used}}], baseline_model=model, candidate_model=model, prices=prices
        )
        total += priced["cost"]["baseline"] or 0.0
    return total


async def judge(
    spec: routepolicy.RoutePolicySpec,
    *,
    candidate: str,
    sample: Sample,
    read_secret: SecretReader,
    seq: int,
) -> Judged:
    """Replay the sample to the baseline and judge the pair blind in both orders (module docstring)."""
    run = run_spec(spec, candidate, policy_name=sample.policy)
    api_key = _key(run.endpoint.api_key_secret_ref, namespace=sample.namespace, read_secret=read_secret)
    judge_endpoint = run.judge.endpoint
    judge_key = (
        _key(judge_endpoint.api_key_secret_ref, namespace=sample.namespace, read_secret=read_secret)
        if judge_endpoint is not None
        else api_key
    )
    settings: dict[str, Any] = {
        "limit": calls.PriorityLimit(4),
        "policy": RETRY,
        "timeout": run.execution.request_timeout_seconds,
        "max_connections": 4,
        "metadata": CALL_METADATA,
    }
    record = dataset.Record(id=f"live-{secrets.token_hex(4)}", messages=sample.messages, line=0)
    served = calls.Completion(
        text=sample.response,
        prompt_tokens=sample.usage.get("prompt_tokens"),
        completion_tokens=sample.usage.get("completion_tokens"),
    )
    async with contextlib.AsyncExitStack() as stack:
        endpoint = calls.ChatEndpoint(run.endpoint.url, role="endpoint", api_key=api_key, **settings)
        stack.push_async_callback(endpoint.aclose)
        judge_url = judge_endpoint.url if judge_endpoint is not None else run.endpoint.url
        judge_calls = calls.ChatEndpoint(judge_url, role="judge", api_key=judge_key, **settings)
        stack.push_async_callback(judge_calls.aclose)
        evaluator = pairs.PairEvaluator(
            run,
            endpoint=endpoint,
            judge_endpoint=judge_calls,
            format_check=formats.FormatCheck(run.format),
            shard=0,
            counters=pairs.Counters(),
        )
        try:
            result = await evaluator.evaluate_served(record, served, seq=seq)
        except errors.EvaluatorError as exc:
            return Judged(score=None, cost_usd=0.0, error=exc.reason)
    spent = cost_of(result, run)
    score = score_of(result, margin=run.test.margin)
    return Judged(score=score, cost_usd=spent, error=None if score is not None else "JudgeVerdictUnreadable")


def _key(ref: Any, *, namespace: str, read_secret: SecretReader) -> str | None:
    if ref is None:
        return None
    return read_secret(namespace=namespace, name=ref.name, key=ref.key)


def messages_of(value: object) -> list[dict[str, Any]] | None:
    """The sample's messages if they are chat messages the evaluator can send (roles and content), else None."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return None
    out = []
    for message in value:
        if not isinstance(message, Mapping) or message.get("role") not in dataset.ROLES:
            return None
        out.append({"role": message["role"], "content": message.get("content") or ""})
    return out

"""The optimizer driver: GEPA (`gepa==0.1.4`, the `optimize` extra) proposes system prompts for the candidate
model; assay scores each on train and validation records with its own blind judge against the baseline's
answers, through the evaluator's pair path (`evaluator.pairs.PairEvaluator`: the same messages, agreement
checks, judge protocol and format checks as a qualification).

- A proposal comes from the examples the prompt loses (score < 0.5): GEPA's reflective dataset holds each
  question, the candidate's answer, the baseline's and why it lost; the reflection model is asked with GEPA's
  own instruction-proposal prompt.
- An answer that breaks the route's output format scores 0, whatever the judge says, and a prompt whose
  validation format pass rate falls below the baseline's by more than `test.formatTolerance` is never picked.
- Budgets: judge calls (a batch starts only when its worst case, 4 calls a record, fits), dollars (a batch
  starts only while the spend is below the budget, so it overshoots by at most one batch) and rounds (GEPA
  iterations). GEPA's own seed makes the search deterministic given the scores.
- Every finished evaluation and proposal goes to the checkpoint (`checkpoint.Checkpoint`) as it finishes; a
  resumed run replays GEPA from the seed and answers what is checkpointed without calling anything.
- The pick: the prompt with the highest mean validation score among those validated on every validation
  record and within the format tolerance (the earliest on ties, the prompt as written first), which is GEPA's
  own rule (FullEvaluationPolicy.get_best_program) plus the format rule. It never sees the holdout.

GEPA runs in a worker thread; its synchronous adapter calls hand coroutines to the caller's event loop, where
the endpoints live. Nothing here logs prompt or answer text, and GEPA's logger (which prints proposals) is muted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import gepa
from gepa.strategies.instruction_proposal import InstructionProposalSignature

from assay.api import qualificationrun
from assay.evaluator import calls, dataset, formats, pairs, plan
from assay.optimize import checkpoint
from assay.qualification import cost, judge
from assay.qualification import evidence as evidence_records

COMPONENT = "system_prompt"
# Two presentation orders, each asked once more when its verdict is unparsable (pairs.PairEvaluator).
MAX_JUDGE_CALLS_PER_RECORD = 4

T = TypeVar("T")


class Endpoint(Protocol):
    """What `evaluator.calls.ChatEndpoint` offers: a fake in tests, the gateway in the Job."""

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], *, record_id: str, priority: int = 0
    ) -> calls.Completion: ...


class BudgetExhausted(Exception):
    """The next batch does not fit the budget; the message says which."""


class OptimizeError(ValueError):
    """Settings the optimizer cannot run with; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """Judge calls, US dollars (None: no dollar limit) and rounds the optimizer may spend."""

    judge_calls: int
    usd: float | None = None
    rounds: int = 10


@dataclasses.dataclass(frozen=True)
class Variant:
    """One prompt the optimizer scored: mean scores on the train and validation records it was scored on."""

    sha: str
    train_score: float | None
    train_records: int
    validation_score: float | None
    validation_records: int
    format_ok: bool


@dataclasses.dataclass(frozen=True)
class Result:
    """The prompt picked on validation, every variant (the prompt as written first), the spend, the proposals
    made (`rounds`), and why the search stopped."""

    prompt: str
    sha: str
    variants: tuple[Variant, ...]
    judge_calls: int
    usd: float
    rounds: int
    stopped: Literal["rounds", "budget"]


@dataclasses.dataclass
class _Trace:
    record: dataset.Record
    outcome: checkpoint.Outcome
    answer: str | None
    baseline: str | None


class _Meter:
    """Wraps an endpoint: prices every call it makes, keeps the baseline's answer to each record (asked once per
    process) and the candidate's last answer (in memory only, for the reflective dataset)."""

    def __init__(self, inner: Endpoint, *, prices: Mapping[str, cost.Price], baseline_model: str, strict: bool):
        self._inner = inner
        self._prices = prices
        self._baseline_model = baseline_model
        self._strict = strict
        self.baselines: dict[str, calls.Completion] = {}
        self.answers: dict[str, str] = {}
        self.usd: dict[str, float] = {}

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], *, record_id: str, priority: int = 0
    ) -> calls.Completion:
        if model == self._baseline_model and record_id in self.baselines:
            return self.baselines[record_id]
        reply = await self._inner.complete(model, messages, record_id=record_id, priority=priority)
        self.usd[record_id] = self.usd.get(record_id, 0.0) + self._price(model, reply)
        if model == self._baseline_model:
            self.baselines[record_id] = reply
        else:
            self.answers[record_id] = reply.text
        return reply

    def _price(self, model: str, reply: calls.Completion) -> float:
        # per_request prices one side of a record; a call is a record of one side here.
        priced = cost.per_request(
            [{"tokens": {"candidate": reply.tokens()}}],
            baseline_model=model,
            candidate_model=model,
            prices=self._prices,
        )["cost"]["candidate"]
        if priced is None and self._strict:
            raise BudgetExhausted(f"a call to model {model!r} reported no token usage: a dollar budget cannot be kept")
        return priced or 0.0


class _Adapter:
    """GEPA's adapter (gepa.GEPAAdapter): evaluate, make_reflective_dataset and propose_new_texts."""

    def __init__(
        self,
        spec: qualificationrun.QualificationRunSpec,
        *,
        loop: asyncio.AbstractEventLoop,
        endpoint: _Meter,
        judge_endpoint: _Meter,
        reflection: Endpoint,
        reflection_model: str,
        store: checkpoint.Checkpoint,
        budget: Budget,
    ) -> None:
        self._spec = spec
        self._loop = loop
        self._endpoint = endpoint
        self._judge = judge_endpoint
        self._reflection = reflection
        self._reflection_model = reflection_model
        self._store = store
        self._budget = budget
        self._format = formats.FormatCheck(spec.format)
        self._visited: set[str] = set()
        self._proposals = 0
        # GEPA swallows what reflection raises; kept here and raised at the next evaluation, so that a failed
        # proposal stops the run (to be resumed) instead of shifting every later proposal of a replay.
        self.failure: Exception | None = None
        self.judge_calls = 0
        self.usd = 0.0

    def _run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()  # type: ignore[arg-type]

    def _visit(self, key: str, judge_calls: int, usd: float | None) -> None:
        """Running spend, counted at the first visit of each evaluation, fresh or checkpointed alike, so a replay
        meets every budget check with the spend the first run had there."""
        if key not in self._visited:
            self._visited.add(key)
            self.judge_calls += judge_calls
            self.usd += usd or 0.0

    def _check_budget(self, records: int) -> None:
        if self.judge_calls + MAX_JUDGE_CALLS_PER_RECORD * records > self._budget.judge_calls:
            raise BudgetExhausted(f"judge calls: {self.judge_calls} of {self._budget.judge_calls} spent")
        if self._budget.usd is not None and self.usd >= self._budget.usd:
            raise BudgetExhausted(f"dollars: {self.usd:.4f} of {self._budget.usd} spent")

    async def _score(self, prompt: str, record: dataset.Record) -> _Trace:
        candidate = self._spec.candidate.model_copy(update={"system_prompt": prompt})
        evaluator = pairs.PairEvaluator(
            self._spec.model_copy(update={"candidate": candidate}),
            endpoint=self._endpoint,  # type: ignore[arg-type]
            judge_endpoint=self._judge,  # type: ignore[arg-type]
            format_check=self._format,
            shard=0,
            counters=pairs.Counters(),
        )
        evidence = await evaluator.evaluate(plan.Slot(seq=0, record=record))
        format_ok = evidence["format_ok"]["candidate"]
        score = 0.0 if format_ok is False else evidence_records.score(evidence)
        usd = self._endpoint.usd.pop(record.id, 0.0) + self._judge.usd.pop(record.id, 0.0)
        outcome = checkpoint.Outcome(
            record_id=record.id,
            score=score,
            format_ok=format_ok,
            baseline_format_ok=evidence["format_ok"]["baseline"],
            judge_calls=evidence["judge_calls"],
            usd=usd,
        )
        self._store.add_outcome(prompt, outcome)
        baseline = record.baseline_response
        if baseline is None and record.id in self._endpoint.baselines:
            baseline = self._endpoint.baselines[record.id].text
        return _Trace(record, outcome, self._endpoint.answers.pop(record.id, None), baseline)

    async def _score_batch(self, prompt: str, records: Sequence[dataset.Record]) -> list[_Trace]:
        sha = checkpoint.prompt_sha(prompt)
        fresh = [r for r in records if self._store.outcome(sha, r.id) is None]
        if fresh:
            self._check_budget(len(records))
        scored = {t.record.id: t for t in await asyncio.gather(*(self._score(prompt, r) for r in fresh))}
        traces = []
        for record in records:
            trace = scored.get(record.id)
            if trace is None:
                outcome = self._store.outcome(sha, record.id)
                assert outcome is not None
                trace = _Trace(record, outcome, None, record.baseline_response)
            self._visit(checkpoint.Checkpoint.key(sha, record.id), trace.outcome.judge_calls, trace.outcome.usd)
            traces.append(trace)
        return traces

    def evaluate(
        self, batch: list[dataset.Record], candidate: dict[str, str], capture_traces: bool = False
    ) -> gepa.EvaluationBatch[_Trace, str]:
        if self.failure is not None:
            raise self.failure
        traces = self._run(self._score_batch(candidate[COMPONENT], batch))
        return gepa.EvaluationBatch(
            outputs=[t.record.id for t in traces],
            scores=[t.outcome.score for t in traces],
            trajectories=list(traces) if capture_traces else None,
        )

    def make_reflective_dataset(
        self,
        candidate: dict[str, str],
        eval_batch: gepa.EvaluationBatch[_Trace, str],
        components_to_update: list[str],
    ) -> dict[str, list[dict[str, Any]]]:
        lost = [t for t in eval_batch.trajectories or [] if t.outcome.score < 0.5]
        if self._proposals < len(self._store.proposals):
            # The proposal is checkpointed: it is answered from there and needs no answers.
            return {COMPONENT: [{"record": t.record.id} for t in lost]}
        missing = [t for t in lost if t.answer is None or t.baseline is None]
        if missing:  # checkpointed outcomes carry no text: ask the candidate again for the answers it lost with
            try:
                self._run(self._refetch(candidate[COMPONENT], missing))
            except Exception as exc:
                self.failure = exc
                raise
        return {COMPONENT: [_example(t, self._format.kind) for t in lost]}

    async def _refetch(self, prompt: str, traces: Sequence[_Trace]) -> None:
        for trace in traces:
            messages = pairs.apply_system_prompt(trace.record.messages, prompt)
            reply = await self._endpoint.complete(self._spec.candidate.model, messages, record_id=trace.record.id)
            trace.answer = self._endpoint.answers.pop(trace.record.id, reply.text)
            if trace.baseline is None:
                base = await self._endpoint.complete(
                    self._spec.baseline.model, trace.record.messages, record_id=trace.record.id
                )
                trace.baseline = base.text
            self.usd += self._endpoint.usd.pop(trace.record.id, 0.0)

    def propose_new_texts(
        self,
        candidate: dict[str, str],
        reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
        components_to_update: list[str],
    ) -> dict[str, str]:
        examples = list(reflective_dataset.get(COMPONENT, []))
        if not examples:
            return {}  # nothing lost: GEPA skips the round without spending on a child
        index = self._proposals
        parent = candidate[COMPONENT]
        if index < len(self._store.proposals):
            done = self._store.proposals[index]
            if done["parent"] != checkpoint.prompt_sha(parent):
                self.failure = checkpoint.CheckpointMismatch(
                    f"proposal {index} had another parent: the replay diverged"
                )
                raise self.failure
            self._proposals += 1
            self._visit(f"proposal/{index}", 0, float(done.get("usd", 0.0)))
            return {COMPONENT: done["prompt"]}
        try:
            prompt, usd = self._propose(parent, examples, index)
        except Exception as exc:
            self.failure = exc
            raise
        self._proposals += 1
        self._store.add_proposal(parent, prompt, usd=usd)
        self._visit(f"proposal/{index}", 0, usd)
        return {COMPONENT: prompt}

    def _propose(self, parent: str, examples: list[Mapping[str, Any]], index: int) -> tuple[str, float]:
        """A new prompt from the reflection model, asked with GEPA's instruction-proposal prompt, and its cost."""
        self._check_budget(0)
        rendered = InstructionProposalSignature.prompt_renderer(
            {"current_instruction_doc": parent, "dataset_with_feedback": examples, "prompt_template": None}
        )
        assert isinstance(rendered, str)  # no images in assay's datasets
        meter = _Meter(
            self._reflection, prices=self._endpoint._prices, baseline_model="", strict=self._endpoint._strict
        )
        reply = self._run(
            meter.complete(
                self._reflection_model, [{"role": "user", "content": rendered}], record_id=f"proposal-{index}"
            )
        )
        return InstructionProposalSignature.output_extractor(reply.text)["new_instruction"], sum(meter.usd.values())


def _example(trace: _Trace, format_kind: str | None) -> dict[str, Any]:
    """One lost example as GEPA's reflection prompt shows it (text, in memory only)."""
    if trace.outcome.format_ok is False:
        feedback = f"The answer broke the required output format ({format_kind}), so it lost whatever its content."
    else:
        feedback = (
            f"A blind judge preferred the other answer (score {trace.outcome.score:.2f} of 1, 0.5 is a tie). "
            f"The answer it preferred:\n{trace.baseline}"
        )
    return {
        "Inputs": judge.question_text(trace.record.messages),
        "Generated Outputs": trace.answer or "",
        "Feedback": feedback,
    }


class _Quiet:
    """GEPA's logger prints proposals (prompt text): assay logs none of it."""

    def log(self, message: str) -> None:
        return None


class _Stop:
    """GEPA's stop condition: the rounds are used up."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def __call__(self, gepa_state: Any) -> bool:
        return bool(gepa_state.i + 1 >= self.rounds)


def _variants(
    store: checkpoint.Checkpoint,
    order: Sequence[str],
    *,
    train: Sequence[dataset.Record],
    validation: Sequence[dataset.Record],
    tolerance: float,
) -> list[Variant]:
    variants = []
    for sha in order:
        train_scores = [o.score for r in train if (o := store.outcome(sha, r.id)) is not None]
        checked = [o for r in validation if (o := store.outcome(sha, r.id)) is not None]
        candidate_ok = [o.format_ok for o in checked if o.format_ok is not None]
        baseline_ok = [o.baseline_format_ok for o in checked if o.baseline_format_ok is not None]
        format_ok = (
            not candidate_ok
            or not baseline_ok
            or (statistics.fmean(candidate_ok) >= statistics.fmean(baseline_ok) - tolerance)
        )
        variants.append(
            Variant(
                sha=sha,
                train_score=statistics.fmean(train_scores) if train_scores else None,
                train_records=len(train_scores),
                validation_score=statistics.fmean(o.score for o in checked) if checked else None,
                validation_records=len(checked),
                format_ok=format_ok,
            )
        )
    return variants


def pick(variants: Sequence[Variant], *, validation_records: int) -> Variant:
    """The variant with the highest mean validation score among those scored on every validation record and
    within the format tolerance; the earliest on ties (the first is the prompt as written)."""
    eligible = [v for v in variants if v.validation_records == validation_records and v.format_ok]
    if not eligible:
        raise OptimizeError("no prompt was scored on every validation record: raise the budget")
    return max(eligible, key=lambda v: (v.validation_score or 0.0, -variants.index(v)))


async def optimize(
    spec: qualificationrun.QualificationRunSpec,
    *,
    train: Sequence[dataset.Record],
    validation: Sequence[dataset.Record],
    endpoint: Endpoint,
    judge_endpoint: Endpoint,
    reflection: Endpoint,
    reflection_model: str,
    budget: Budget,
    seed: int,
    checkpoint_path: Any = None,
    minibatch_size: int = 3,
) -> Result:
    """Optimize the candidate's system prompt (spec.candidate.systemPrompt, or none, is where it starts) on
    `train`, pick on `validation`, and return the pick. Never sees any other record: the holdout stays unseen.
    Resumes from `checkpoint_path` when it exists (and was written with the same settings)."""
    prices = cost.price_table(spec.pricing)
    strict = budget.usd is not None
    if strict:
        for field, model in (
            ("candidate.model", spec.candidate.model),
            ("judge.model", spec.judge.model),
            ("baseline.model", spec.baseline.model),
            ("optimize.model", reflection_model),
        ):
            if model not in prices and model.rsplit("/", 1)[-1] not in prices:
                raise OptimizeError(f"{field} {model!r} has no price: add it to spec.pricing to keep a dollar budget")
    seed_prompt = spec.candidate.system_prompt or ""
    settings = {
        "seed": seed,
        "seedPrompt": checkpoint.prompt_sha(seed_prompt),
        "candidate": spec.candidate.model,
        "baseline": spec.baseline.model,
        "judge": spec.judge.model,
        "reflection": reflection_model,
        "train": [r.id for r in train],
        "validation": [r.id for r in validation],
        "minibatch": minibatch_size,
    }
    store = checkpoint.Checkpoint(checkpoint_path, settings=settings)
    adapter = _Adapter(
        spec,
        loop=asyncio.get_running_loop(),
        endpoint=_Meter(endpoint, prices=prices, baseline_model=spec.baseline.model, strict=strict),
        judge_endpoint=_Meter(judge_endpoint, prices=prices, baseline_model="", strict=strict),
        reflection=reflection,
        reflection_model=reflection_model,
        store=store,
        budget=budget,
    )
    stopped: Literal["rounds", "budget"] = "rounds"

    def search() -> None:
        gepa.optimize(
            seed_candidate={COMPONENT: seed_prompt},
            trainset=list(train),
            valset=list(validation),
            adapter=adapter,  # type: ignore[arg-type]
            stop_callbacks=_Stop(budget.rounds),
            reflection_minibatch_size=minibatch_size,
            candidate_selection_strategy="pareto",
            logger=_Quiet(),
            track_best_outputs=False,
            seed=seed,
            raise_on_exception=True,
        )

    try:
        await asyncio.to_thread(search)
        if adapter.failure is not None:  # the last round's proposal failed after the last evaluation
            raise adapter.failure
    except BudgetExhausted:
        stopped = "budget"
    order = [checkpoint.prompt_sha(seed_prompt)]
    for proposal in store.proposals:
        if (sha := checkpoint.prompt_sha(proposal["prompt"])) not in order:
            order.append(sha)
    variants = _variants(store, order, train=train, validation=validation, tolerance=spec.test.format_tolerance)
    best = pick(variants, validation_records=len(validation))
    return Result(
        prompt=store.prompts.get(best.sha, seed_prompt),
        sha=best.sha,
        variants=tuple(variants),
        judge_calls=adapter.judge_calls,
        usd=adapter.usd,
        rounds=len(store.proposals),
        stopped=stopped,
    )

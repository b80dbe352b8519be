"""The optimizer driver against fakes of the models, the judge and the reflection model, in a world where the
small model's quality depends on its instructions (assaylab.instructed)."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from assay.api import QualificationRunSpec
from assay.evaluator import calls, dataset, errors
from assay.optimize import checkpoint, driver, split
from assay.qualification import decision, evidence, judge
from assaylab import instructed

PER_KIND = 150
RECORDS = [
    dataset.Record(id=f"r-{kind}-{i:03d}", messages=[{"role": "user", "content": instructed.question(kind, i)}], line=0)
    for kind in instructed.KINDS
    for i in range(PER_KIND)
]
BY_ID = {r.id: r for r in RECORDS}
PARTS = split.split([r.id for r in RECORDS], seed=11)
TRAIN = [BY_ID[i] for i in PARTS.train]
VALIDATION = [BY_ID[i] for i in PARTS.validation]
HOLDOUT = [BY_ID[i] for i in PARTS.holdout]
PRICES = [
    {"model": m, "inputPerMillion": 1.0, "outputPerMillion": 2.0} for m in ("small", "large", "judge", "reflector")
]


def make_spec(prompt: str | None = instructed.AS_WRITTEN, **format_: Any) -> QualificationRunSpec:
    return QualificationRunSpec.model_validate(
        {
            "endpoint": {"url": "http://gateway.example"},
            "baseline": {"model": "large"},
            "candidate": {"name": "cheap", "model": "small", "systemPrompt": prompt},
            "dataset": {"path": "/data/records.jsonl"},
            "judge": {"model": "judge"},
            "format": format_ or {"type": "None"},
            "pricing": PRICES,
        }
    )


def system_prompt(messages: Sequence[Mapping[str, Any]]) -> str | None:
    return str(messages[0]["content"]) if messages and messages[0]["role"] == "system" else None


class Models:
    """The candidate and the baseline: instructed.answer, tagged with the prompt's hash so a judge prompt names
    the evaluation it belongs to. `preamble` is a phrase that makes every answer good and breaks the format."""

    def __init__(self, *, preamble: str | None = None) -> None:
        self.calls: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.preamble = preamble

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], *, record_id: str, priority: int = 0
    ) -> calls.Completion:
        prompt = system_prompt(messages)
        tag = checkpoint.prompt_sha(prompt or "")[:8] if model == "small" else "baseline"
        self.calls[(model, tag, record_id)] += 1
        kind = instructed.kind_of(judge.question_text(messages))
        text = f"{instructed.answer(model, prompt, record_id, kind)} ({tag})"
        if self.preamble and prompt and self.preamble in prompt:
            text = f"Sure! good answer to {record_id} ({tag})"
        return calls.Completion(text=text, prompt_tokens=100, completion_tokens=50)


class Judge:
    """A fair blind judge (instructed.judge_verdict); `crash_after` calls, it raises, as a killed pod stops."""

    def __init__(self, *, crash_after: int | None = None) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.crash_after = crash_after

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], *, record_id: str, priority: int = 0
    ) -> calls.Completion:
        if self.crash_after is not None and sum(self.calls.values()) >= self.crash_after:
            raise RuntimeError("killed")
        user = str(messages[-1]["content"])
        a = user.split(judge.RESPONSE_A_START + "\n", 1)[1].split("\n" + judge.RESPONSE_A_END, 1)[0]
        b = user.split(judge.RESPONSE_B_START + "\n", 1)[1].split("\n" + judge.RESPONSE_B_END, 1)[0]
        self.calls[user] += 1
        return calls.Completion(json.dumps({"verdict": instructed.judge_verdict(a, b)}), 400, 20)


class Reflector:
    """The reflection model: reads GEPA's instruction-proposal prompt and edits the instruction (instructed.propose)."""

    def __init__(self, *, edit: str | None = None, fail_at: int | None = None) -> None:
        self.calls = 0
        self.edit = edit
        self.fail_at = fail_at

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], *, record_id: str, priority: int = 0
    ) -> calls.Completion:
        self.calls += 1
        if self.calls == self.fail_at:
            raise errors.ModelCallFailed("reflection call failed", reason="ModelUnavailable")
        text = str(messages[-1]["content"])
        current = re.search(r"```\n(.*?)\n```", text, re.DOTALL)
        instruction = current.group(1).strip() if current else ""
        lost = re.findall(r"## Inputs\n(.*?)\n\n", text, re.DOTALL)
        proposal = f"{instruction} {self.edit}" if self.edit else instructed.propose(instruction, lost)
        return calls.Completion(f"```\n{proposal}\n```", 2000, 100)


async def run(spec: QualificationRunSpec, models: Models, judges: Judge, **options: Any) -> driver.Result:
    settings: dict[str, Any] = {"budget": driver.Budget(judge_calls=20_000, usd=5.0, rounds=30), "seed": 3}
    settings.update(options)
    return await driver.optimize(
        spec,
        train=TRAIN,
        validation=VALIDATION,
        endpoint=models,
        judge_endpoint=judges,
        reflection=settings.pop("reflection", Reflector()),
        reflection_model="reflector",
        **settings,
    )


def holdout_verdict(prompt: str | None) -> str:
    """The real decision on the holdout for `prompt`: evidence records from the world's answers and fair judge."""
    records = []
    for seq, record in enumerate(HOLDOUT):
        kind = instructed.kind_of(str(record.messages[0]["content"]))
        cand = instructed.answer("small", prompt, record.id, kind)
        base = instructed.answer("large", None, record.id, kind)
        first = {"A": "candidate", "B": "baseline", "tie": "tie"}[instructed.judge_verdict(cand, base)]
        second = {"A": "baseline", "B": "candidate", "tie": "tie"}[instructed.judge_verdict(base, cand)]
        wire = {"seq": seq, "id": record.id, "control": False, "agreement": None}
        records.append(evidence.from_dict({**wire, "judge": {"candidate_first": first, "baseline_first": second}}))
    return decision.decide(records, decision.TestSettings(min_controls=0)).verdict


async def test_a_candidate_that_fails_as_written_passes_on_the_holdout_once_optimized():
    result = await run(make_spec(), Models(), Judge())
    as_written = result.variants[0]
    assert as_written.sha == checkpoint.prompt_sha(instructed.AS_WRITTEN)
    assert as_written.validation_score is not None and as_written.validation_score < 0.45
    assert result.sha != as_written.sha
    assert holdout_verdict(instructed.AS_WRITTEN) == "failed"
    assert holdout_verdict(result.prompt) == "passed"
    assert "Think step by step." not in result.prompt


async def test_the_search_never_sees_a_holdout_record():
    models = Models()
    await run(make_spec(), models, Judge(), budget=driver.Budget(judge_calls=20_000, rounds=4))
    seen = {record_id for _, _, record_id in models.calls}
    assert seen and seen.isdisjoint(PARTS.holdout)
    assert seen <= set(PARTS.train) | set(PARTS.validation)


async def test_a_killed_run_resumes_without_repeating_an_evaluation_and_reaches_the_same_result(tmp_path):
    budget = driver.Budget(judge_calls=20_000, usd=5.0, rounds=8)
    reference = await run(make_spec(), Models(), Judge(), budget=budget)

    path = tmp_path / "optimize.json"
    killed = Judge(crash_after=reference.judge_calls // 2)
    with pytest.raises(RuntimeError, match="killed"):
        await run(make_spec(), Models(), killed, budget=budget, checkpoint_path=path)
    finished = len(json.loads(path.read_text())["outcomes"])
    assert finished > 0
    resumed = Judge()
    result = await run(make_spec(), Models(), resumed, budget=budget, checkpoint_path=path)

    repeated = [prompt for prompt in resumed.calls if prompt in killed.calls]
    assert repeated == []  # no judge prompt (prompt hash x record x order) was asked twice
    # Baseline answers the dataset does not carry are kept in memory only (no answer text in the checkpoint), so
    # the resumed process asks each record's baseline once more: that is the only dollar difference.
    assert result == dataclasses.replace(reference, usd=result.usd)
    baseline_call = (100 * 1.0 + 50 * 2.0) / 1e6
    assert 0 <= result.usd - reference.usd <= baseline_call * (len(TRAIN) + len(VALIDATION)) + 1e-9
    assert sum(killed.calls.values()) + sum(resumed.calls.values()) == reference.judge_calls


KILLED_RUN = """
import asyncio, hashlib, os, pathlib, signal, sys
sys.path[:0] = [{tests!r}, {here!r}]
import test_optimizer as t

class Killing(t.Judge):
    async def complete(self, model, messages, *, record_id, priority=0):
        if sum(self.calls.values()) >= {after}:
            os.kill(os.getpid(), signal.SIGKILL)  # no exception, no cleanup: the pod is gone
        with open({asked!r}, "a") as asked:
            asked.write(hashlib.sha256(str(messages[-1]["content"]).encode()).hexdigest() + "\\n")
        return await super().complete(model, messages, record_id=record_id, priority=priority)

budget = t.driver.Budget(judge_calls=20_000, usd=5.0, rounds=8)
asyncio.run(t.run(t.make_spec(), t.Models(), Killing(), budget=budget, checkpoint_path=pathlib.Path({path!r})))
"""


async def test_a_process_killed_by_sigkill_resumes_from_its_checkpoint_without_asking_the_judge_again(tmp_path):
    budget = driver.Budget(judge_calls=20_000, usd=5.0, rounds=8)
    reference = await run(make_spec(), Models(), Judge(), budget=budget)
    path, asked = tmp_path / "optimize.json", tmp_path / "asked.txt"
    here = pathlib.Path(__file__).parent
    script = KILLED_RUN.format(
        tests=str(here.parents[1]), here=str(here), after=reference.judge_calls // 3, asked=str(asked), path=str(path)
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    finished = {tuple(key.split("/")) for key in json.loads(path.read_text())["outcomes"]}  # the last write is whole
    finished = {(sha[:8], record_id) for sha, record_id in finished}
    resumed = Judge()
    result = await run(make_spec(), Models(), resumed, budget=budget, checkpoint_path=path)
    before = set(asked.read_text().split())
    again = [p for p in resumed.calls if hashlib.sha256(p.encode()).hexdigest() in before]
    # Only the evaluations in flight when the process died are asked again; no finished one is.
    evaluations = {re.search(r"answer to (\S+) \((\w+)\)\n\[End of Response [AB]\]\n\n\[Response B", p) for p in again}
    assert before and finished
    assert all(m is not None and (m.group(2), m.group(1)) not in finished for m in evaluations)
    assert result == dataclasses.replace(reference, usd=result.usd)


async def test_a_failed_reflection_stops_the_run_and_its_resumption_reaches_the_same_result(tmp_path):
    """GEPA swallows what a proposal raises; the driver does not, or a replay would shift every later proposal."""
    budget = driver.Budget(judge_calls=20_000, usd=5.0, rounds=8)
    reference = await run(make_spec(), Models(), Judge(), budget=budget)
    path = tmp_path / "optimize.json"
    with pytest.raises(errors.ModelCallFailed):
        await run(make_spec(), Models(), Judge(), budget=budget, checkpoint_path=path, reflection=Reflector(fail_at=3))
    result = await run(make_spec(), Models(), Judge(), budget=budget, checkpoint_path=path)
    assert result == dataclasses.replace(reference, usd=result.usd)


async def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    path = tmp_path / "optimize.json"
    await run(make_spec(), Models(), Judge(), budget=driver.Budget(judge_calls=2_000, rounds=1), checkpoint_path=path)
    with pytest.raises(checkpoint.CheckpointMismatch, match="other settings"):
        await run(make_spec(), Models(), Judge(), seed=4, checkpoint_path=path)


async def test_a_proposal_whose_answers_break_the_format_loses():
    spec = make_spec("Be brief.", type="Regex", pattern=r"(good|poor) answer to \S+ \(\w+\)")
    reflector = Reflector(edit="Open with a friendly preamble.")
    result = await run(
        spec, Models(preamble="preamble"), Judge(), reflection=reflector, budget=driver.Budget(20_000, rounds=3)
    )
    assert reflector.calls >= 1
    broken = [v for v in result.variants if v.sha != checkpoint.prompt_sha("Be brief.")]
    assert broken and all(v.train_score == 0.0 for v in broken)
    assert result.sha == checkpoint.prompt_sha("Be brief.")


async def test_the_judge_budget_is_never_exceeded():
    result = await run(make_spec(), Models(), Judge(), budget=driver.Budget(judge_calls=700, rounds=50))
    assert result.stopped == "budget"
    assert result.judge_calls <= 700


async def test_the_dollar_budget_stops_the_search():
    result = await run(make_spec(), Models(), Judge(), budget=driver.Budget(judge_calls=100_000, usd=0.05, rounds=50))
    assert result.stopped == "budget"
    assert result.usd >= 0.05


async def test_a_dollar_budget_needs_a_price_for_every_model():
    spec = make_spec().model_copy(update={"pricing": []})
    with pytest.raises(driver.OptimizeError, match=r"candidate\.model 'small' has no price"):
        await run(spec, Models(), Judge())


def test_the_operator_never_imports_the_optimizer_library():
    code = "import sys, assay.cli, assay.controllers.registry, assay.evaluator.job; print('gepa' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"

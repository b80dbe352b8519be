"""The simulated judge reads assay's blind pairwise prompt and judges by the ideal answer."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from assay.qualification import judge
from assaylab import simulator as sim

RECORDS = sim.make_dataset(400, seed=8)


def _verdict(config: sim.SimulatorConfig, record: dict, a: str, b: str, **kwargs: object) -> judge.Label | None:
    messages = judge.build_judge_messages(record["messages"], a, b, **kwargs)  # type: ignore[arg-type]
    prompt = sim.parse_judge_prompt(messages[-1]["content"])
    assert prompt is not None
    reply = sim.judge_reply(config, "judge", prompt)
    assert judge.parse_verdict(reply.text) == reply.label
    return reply.label


def _judge(**behaviour: object) -> sim.SimulatorConfig:
    return sim.parse_config({"seed": 2, "models": {"judge": {"role": "judge", **behaviour}}})


def _question(record: dict) -> str:
    return judge.question_text(record["messages"])


def _degraded(record: dict) -> str:
    weak = sim.parse_config({"seed": 2, "models": {"weak": {"quality": 0.0}}})
    return sim.model_answer(weak, "weak", _question(record)).text


def test_judge_prompt_is_parsed_back_exactly() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question?\nWith two lines."},
    ]
    built = judge.build_judge_messages(messages, "Answer one.", "", reference="The reference.")
    prompt = sim.parse_judge_prompt(built[-1]["content"])
    assert prompt == sim.JudgePrompt(
        question="Second question?\nWith two lines.",
        reference="The reference.",
        response_a="Answer one.",
        response_b="",
    )
    assert sim.parse_judge_prompt("Just a normal question.") is None


def test_judge_prefers_the_better_answer_in_both_orders() -> None:
    config = _judge()
    for record in RECORDS[:100]:
        ideal, worse = sim.ideal_answer(_question(record)), _degraded(record)
        assert _verdict(config, record, ideal, worse) == "A"
        assert _verdict(config, record, worse, ideal) == "B"


def test_judge_ties_answers_of_equal_quality() -> None:
    config = _judge()
    record = RECORDS[0]
    ideal = sim.ideal_answer(_question(record))
    padded = ideal + " " + sim.FILLER_SENTENCES[0]
    assert _verdict(config, record, ideal, ideal) == "tie"
    assert _verdict(config, record, ideal, padded) == "tie"


def test_judge_measures_against_the_reference_in_the_prompt() -> None:
    config = _judge()
    record = RECORDS[0]
    ideal = sim.ideal_answer(_question(record))
    assert _verdict(config, record, "Paris is the capital.", ideal, reference="Paris is the capital.") == "A"
    assert _verdict(config, record, "Paris is the capital.", ideal) == "B"


def test_position_biased_judge_answers_a_on_close_pairs_at_its_rate() -> None:
    config = _judge(position_bias=0.3)
    labels = Counter(
        _verdict(config, r, sim.ideal_answer(_question(r)), sim.ideal_answer(_question(r))) for r in RECORDS
    )
    assert labels["A"] / len(RECORDS) == pytest.approx(0.3, abs=0.07)
    assert labels["B"] == 0
    # A clear difference is still judged on quality.
    for record in RECORDS[:50]:
        assert _verdict(config, record, _degraded(record), sim.ideal_answer(_question(record))) == "B"


def test_length_biased_judge_prefers_the_longer_of_two_equal_answers() -> None:
    config = _judge(length_bias=1.0)
    for record in RECORDS[:50]:
        ideal = sim.ideal_answer(_question(record))
        padded = ideal + " " + sim.FILLER_SENTENCES[1]
        assert _verdict(config, record, ideal, padded) == "B"
        assert _verdict(config, record, padded, ideal) == "A"


def _control_catch_rate(config: sim.SimulatorConfig) -> float:
    """Intact ideal answer against a truncated, shuffled or foreign copy, in both orders."""
    rng = random.Random(0)
    caught = total = 0
    for index, record in enumerate(RECORDS):
        intact = sim.ideal_answer(_question(record))
        words = intact.split()
        rng.shuffle(words)
        foreign = sim.ideal_answer(_question(RECORDS[index - 1]))
        for degraded in (intact[: len(intact) // 2], " ".join(words), foreign):
            caught += _verdict(config, record, intact, degraded) == "A"
            caught += _verdict(config, record, degraded, intact) == "B"
            total += 2
    return caught / total


def test_a_sensitive_judge_catches_degraded_controls() -> None:
    assert _control_catch_rate(_judge()) == 1.0
    assert _control_catch_rate(sim.parse_config({"models": {"judge": sim.demo_config().models["judge-large"]}})) > 0.9


def test_an_insensitive_judge_fails_the_sensitivity_controls() -> None:
    config = _judge(insensitive=True)
    assert _control_catch_rate(config) < 0.5
    labels = Counter(_verdict(config, r, "x.", "y.") for r in RECORDS)
    assert set(labels) == {"A", "B", "tie"}


def test_noisy_judge_gives_random_verdicts_at_its_rate() -> None:
    config = _judge(noise=0.3)
    ties = sum(_verdict(config, r, sim.ideal_answer(_question(r)), "Wrong.") != "A" for r in RECORDS)
    # A random verdict differs from the right one two times in three.
    assert ties / len(RECORDS) == pytest.approx(0.2, abs=0.06)


def test_invalid_replies_cannot_be_parsed_and_come_from_the_request_draw() -> None:
    config = _judge(invalid_rate=0.5)
    record = RECORDS[0]
    messages = judge.build_judge_messages(record["messages"], "a.", "b.")
    prompt = sim.parse_judge_prompt(messages[-1]["content"])
    assert prompt is not None
    invalid = sim.judge_reply(config, "judge", prompt, invalid_draw=0.1)
    retried = sim.judge_reply(config, "judge", prompt, invalid_draw=0.9)
    assert invalid.label is None and judge.parse_verdict(invalid.text) is None
    assert retried.label is not None and judge.parse_verdict(retried.text) == retried.label


def test_demo_world_separates_the_good_candidate_from_the_bad_one() -> None:
    """Mean pairwise score (agreement 0.5, else the judge in both orders) against the gpt-4o baseline."""
    config = sim.demo_config()
    points = {"candidate": 1.0, "tie": 0.5, "baseline": 0.0, "invalid": 0.0}

    def mean_score(candidate: str) -> float:
        total = 0.0
        for record in RECORDS:
            question = _question(record)
            cand = sim.model_answer(config, candidate, question).text
            base = sim.model_answer(config, "gpt-4o", question).text
            if cand == base:
                total += 0.5
                continue
            for candidate_is, (a, b) in (("A", (cand, base)), ("B", (base, cand))):
                prompt = sim.parse_judge_prompt(judge.build_judge_messages(record["messages"], a, b)[-1]["content"])
                assert prompt is not None
                label = sim.judge_reply(config, "judge-large", prompt).label
                total += points[judge.winner(label, candidate_is=candidate_is)] / 2  # type: ignore[arg-type]
        return total / len(RECORDS)

    assert mean_score("gpt-4o-mini") == pytest.approx(0.5, abs=0.05)
    assert mean_score("tiny-llm") < 0.4

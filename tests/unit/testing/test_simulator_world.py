"""The simulated world: ideal answers, model quality, verbosity, datasets and configuration."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from assaylab import simulator as sim


def _config(**models: Mapping[str, object]) -> sim.SimulatorConfig:
    return sim.parse_config({"seed": 11, "models": models})


QUESTIONS = [record["messages"][0]["content"] for record in sim.make_dataset(600, seed=3)]


def test_ideal_answer_is_a_function_of_the_question_text_only() -> None:
    question = QUESTIONS[0]
    assert sim.ideal_answer(question) == sim.ideal_answer(question)
    assert sim.ideal_answer(question) != sim.ideal_answer(QUESTIONS[1])
    assert 3 <= len(sim.split_sentences(sim.ideal_answer(question))) <= 5


def test_configured_reference_is_the_ideal_answer_and_what_a_perfect_model_says() -> None:
    config = sim.parse_config({"models": {"m": {"quality": 1.0}}, "references": {"What is 6*7?": "42."}})
    assert sim.ideal_answer("What is 6*7?", references=config.references) == "42."
    assert sim.model_answer(config, "m", "What is 6*7?") == sim.Answer(text="42.", ideal=True)


def test_answers_are_deterministic_under_a_seed_and_change_with_it() -> None:
    models = {"m": {"quality": 0.5}}
    first = [sim.model_answer(_config(**models), "m", q) for q in QUESTIONS[:100]]
    again = [sim.model_answer(_config(**models), "m", q) for q in QUESTIONS[:100]]
    reseeded = sim.parse_config({"seed": 12, "models": models})
    other = [sim.model_answer(reseeded, "m", q) for q in QUESTIONS[:100]]
    assert first == again
    assert [a.ideal for a in first] != [a.ideal for a in other]


def test_quality_is_the_share_of_ideal_answers() -> None:
    config = _config(good={"quality": 0.8}, bad={"quality": 0.35})
    for model, quality in (("good", 0.8), ("bad", 0.35)):
        share = sum(sim.model_answer(config, model, q).ideal for q in QUESTIONS) / len(QUESTIONS)
        assert share == pytest.approx(quality, abs=0.06)


def test_equal_quality_models_agree_exactly_where_both_answer_ideally() -> None:
    config = _config(baseline={"quality": 0.8}, candidate={"quality": 0.8})
    both_ideal = 0
    for question in QUESTIONS:
        a, b = sim.model_answer(config, "baseline", question), sim.model_answer(config, "candidate", question)
        if a.ideal and b.ideal:
            both_ideal += 1
            assert a.text == b.text == sim.ideal_answer(question)
        elif a.ideal != b.ideal:
            assert a.text != b.text
    assert both_ideal / len(QUESTIONS) == pytest.approx(0.64, abs=0.07)


def test_degraded_answers_are_strictly_less_similar_to_the_ideal() -> None:
    config = _config(weak={"quality": 0.0})
    for question in QUESTIONS[:200]:
        ideal = sim.ideal_answer(question)
        answer = sim.model_answer(config, "weak", question)
        assert not answer.ideal
        assert sim.answer_similarity(answer.text, ideal) < 1.0
        assert sim.answer_similarity(answer.text, ideal) >= 0.0
    assert sim.answer_similarity(sim.ideal_answer(QUESTIONS[0]), sim.ideal_answer(QUESTIONS[0])) == 1.0


def test_verbosity_pads_with_filler_that_adds_no_facts() -> None:
    config = _config(terse={"quality": 1.0}, verbose={"quality": 1.0, "verbosity": 2.0})
    for question in QUESTIONS[:50]:
        ideal = sim.ideal_answer(question)
        verbose = sim.model_answer(config, "verbose", question)
        assert verbose.ideal
        assert len(verbose.text) > 1.3 * len(ideal)
        assert sim.answer_similarity(verbose.text, ideal) == 1.0
        assert any(filler in verbose.text for filler in sim.FILLER_SENTENCES)
    assert sim.model_answer(config, "terse", QUESTIONS[0]).text == sim.ideal_answer(QUESTIONS[0])


def test_similarity_counts_ideal_sentences_in_order_and_penalizes_truncation() -> None:
    ideal = "The a limits the b. The c feeds the d. The e warms the f. The g signs the h."
    assert sim.answer_similarity("The a limits the b. The c feeds the d.", ideal) == 0.5
    assert sim.answer_similarity("The c feeds the d. The a limits the b.", ideal) == 0.25
    assert sim.answer_similarity("the A limits  the b.", ideal) == 0.25
    assert sim.answer_similarity("The a limits the b. The c feeds", ideal) == pytest.approx(0.125)
    assert sim.answer_similarity("Something else entirely.", ideal) == 0.0


def test_make_dataset_is_deterministic_distinct_and_in_the_evaluator_format() -> None:
    records = sim.make_dataset(200, seed=5, with_references=True)
    assert records == sim.make_dataset(200, seed=5, with_references=True)
    assert records != sim.make_dataset(200, seed=6, with_references=True)
    assert len({r["id"] for r in records}) == len({r["messages"][0]["content"] for r in records}) == 200
    first = records[0]
    assert first["messages"][0]["role"] == "user"
    assert first["reference"] == sim.ideal_answer(first["messages"][0]["content"])
    assert isinstance(first["metadata"], dict)
    assert "reference" not in sim.make_dataset(1, seed=5)[0]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(sim.SimulatorConfigError, match=r"models\.m\.quality"):
        sim.parse_config({"models": {"m": {"quality": 1.5}}})
    with pytest.raises(sim.SimulatorConfigError, match=r"models\.m\.qualty"):
        sim.parse_config({"models": {"m": {"qualty": 0.5}}})
    with pytest.raises(sim.SimulatorConfigError, match="models"):
        sim.parse_config({"models": {}})


def test_load_config_reads_yaml_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("seed: 3\nmodels:\n  m: {quality: 0.5, role: judge}\n")
    config = sim.load_config(path)
    assert config.seed == 3 and config.models["m"].role == "judge"
    path.write_text("- not a mapping\n")
    with pytest.raises(sim.SimulatorConfigError, match=re.escape(str(path))):
        sim.load_config(path)


def test_demo_config_describes_the_demo_world() -> None:
    config = sim.demo_config()
    assert config.models["gpt-4o"].quality == config.models["gpt-4o-mini"].quality == 0.8
    assert config.models["tiny-llm"].quality == 0.35
    judge_model = config.models["judge-large"]
    assert (judge_model.role, judge_model.position_bias, judge_model.noise) == ("judge", 0.05, 0.02)

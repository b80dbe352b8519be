"""The decision procedure on evidence records: verdicts, reasons, guardrails and the report."""

from __future__ import annotations

import collections
import json
import math
import random

import pytest

from assay.qualification import decision, evidence, simulate

GUARDED = simulate.Scenario(mu=0.6, control_rate=0.1)  # a clearly good candidate, a sound judge, controls


def run(scenario: simulate.Scenario, *, seed: int = 0, n: int = 1500, **settings: object) -> decision.Decision:
    return decision.decide(simulate.simulate_evidence(n, scenario, seed=seed), decision.TestSettings(**settings))  # type: ignore[arg-type]


def decisions(scenario: simulate.Scenario, runs: int = 20, **settings: object) -> list[decision.Decision]:
    return [run(scenario, seed=seed, **settings) for seed in range(runs)]


def outcomes(scenario: simulate.Scenario, runs: int = 20, **settings: object) -> collections.Counter[str]:
    return collections.Counter(result.reason for result in decisions(scenario, runs, **settings))


def guardrail_states(result: decision.Decision) -> dict[str, str]:
    return {g["name"]: g["status"] for g in result.stats["guardrails"]}


def pair(seq: int, winner: str = "candidate", *, control: bool = False, **extra: object) -> evidence.EvidenceRecord:
    verdicts = evidence.JudgeVerdicts(candidate_first=winner, baseline_first=winner)  # type: ignore[arg-type]
    return evidence.EvidenceRecord(seq=seq, id=f"p{seq}", control=control, judge=verdicts, **extra)  # type: ignore[arg-type]


def caught_control(seq: int) -> evidence.EvidenceRecord:
    return pair(seq, "baseline", control=True)


# -- each guardrail vetoes the case it exists for, and only that case -------------------------------------


def test_sound_judge_and_good_candidate_pass_with_every_guardrail_holding():
    assert outcomes(GUARDED) == {"NonInferior": 20}
    states = guardrail_states(run(GUARDED))
    assert states == {"control": "ok", "swap": "ok", "length": "ok", "format": "not_applicable"}


@pytest.mark.parametrize(
    ("scenario", "reason", "vetoing"),
    [
        (simulate.Scenario(mu=0.6, control_rate=0.1, control_catch=0.6), "JudgeInsensitive", "control"),
        (simulate.Scenario(mu=0.6, control_rate=0.1, position_bias=0.5), "SwapInconsistent", "swap"),
        (
            simulate.Scenario(mu=0.6, control_rate=0.1, format_pass_baseline=0.99, format_pass_candidate=0.85),
            "FormatRegression",
            "format",
        ),
        # Worse than the margin at equal length, preferred for its length: the raw test passes, the fit does not.
        (simulate.Scenario(mu=0.35, control_rate=0.1, length_ratio=1.4, length_bias=0.6), "LengthBiased", "length"),
    ],
)
def test_each_guardrail_vetoes_its_own_case_and_no_other_guardrail_fires(scenario, reason, vetoing):
    results = decisions(scenario, runs=12)
    counts = collections.Counter(result.reason for result in results)
    assert counts[reason] >= 11, counts
    assert set(counts) <= {reason, "NonInferior", "WorseThanBaseline"}, counts
    for result in results:
        if result.reason == reason:
            states = guardrail_states(result)
            assert states.pop(vetoing) == "violated"
            assert "violated" not in states.values()


@pytest.mark.parametrize(
    "scenario",
    [
        simulate.Scenario(mu=0.6, control_rate=0.1, length_ratio=1.4),  # longer and genuinely better
        simulate.Scenario(mu=0.6, control_rate=0.1, format_pass_baseline=0.99, format_pass_candidate=0.99),
        simulate.Scenario(mu=0.6, control_rate=0.1, control_catch=0.97),
        simulate.Scenario(mu=0.6, control_rate=0.1, position_bias=0.1),
    ],
)
def test_guardrails_let_a_good_candidate_through_when_their_case_is_mild(scenario):
    assert outcomes(scenario, runs=10) == {"NonInferior": 10}


def test_length_guardrail_applies_at_every_ratio_and_reports_the_fit():
    equal = run(GUARDED)
    assert equal.stats["length_ratio"] <= 1.1
    assert equal.stats["length_controlled_lower"] > 0.45  # fitted although the lengths are about equal
    assert guardrail_states(equal)["length"] == "ok"
    longer = run(simulate.Scenario(mu=0.6, control_rate=0.1, length_ratio=1.4))
    assert longer.verdict == "passed"
    assert longer.stats["length_ratio"] > 1.3
    assert longer.stats["length_controlled_lower"] > 0.45
    assert longer.stats["samples"] >= 50  # the first look at the length-controlled fit


def test_a_candidate_preferred_for_length_fails_length_biased_only_with_its_upper_bound_below_the_margin():
    worse = run(simulate.Scenario(mu=0.35, control_rate=0.1, length_ratio=1.4, length_bias=0.6))
    assert (worse.verdict, worse.reason) == ("failed", "LengthBiased")
    length = next(g for g in worse.stats["guardrails"] if g["name"] == "length")
    assert length["status"] == "violated" and length["upper"] < 0.45
    assert worse.stats["length_controlled_upper"] < 0.45
    assert "preferred length" in worse.message


def test_a_margin_candidate_preferred_for_length_is_inconclusive_not_promoted():
    results = decisions(simulate.Scenario(mu=0.45, control_rate=0.1, length_ratio=1.4, length_bias=0.6), runs=6)
    assert {(r.verdict, r.reason) for r in results} == {("inconclusive", "LengthUnresolved")}


def test_an_equal_candidate_whose_length_bounds_straddle_the_margin_at_the_end_is_inconclusive():
    """The demo's case: equal quality, equal length, too few pairs for the length-controlled bound."""
    result = run(simulate.Scenario(mu=0.5, control_rate=0.1), seed=25, n=330, max_samples=300)
    assert (result.verdict, result.reason) == ("inconclusive", "LengthUnresolved")
    assert result.stats["crossed_at"] is not None  # the raw test passed
    length = next(g for g in result.stats["guardrails"] if g["name"] == "length")
    assert length["status"] == "insufficient"
    assert length["lower"] < 0.45 < length["upper"]
    assert "raw test passed" in result.message and "straddle 0.450" in result.message
    assert "More samples" in result.message


# -- the statistical decision ----------------------------------------------------------------------------


def test_clearly_worse_candidate_fails_early_with_futility_and_below_margin_without():
    slightly = simulate.Scenario(mu=0.44, control_rate=0.1)
    result = run(slightly, n=3000, max_samples=3000)
    assert result.verdict == "failed" and result.stats["upper"] < 0.5
    strict = run(slightly, n=3000, max_samples=3000, futility=False)
    assert (strict.verdict, strict.reason) == ("failed", "BelowMargin")
    assert strict.stats["upper"] < 0.45
    assert strict.stats["samples"] >= result.stats["samples"]
    clearly = run(simulate.Scenario(mu=0.3, control_rate=0.1))
    assert clearly.verdict == "failed" and clearly.stats["samples"] < 80


def test_pass_waits_for_min_samples_and_for_ten_controls():
    records = []
    for seq in range(200):
        records.append(caught_control(seq) if seq % 8 == 7 else pair(seq))
    result = decision.decide(records)
    assert result.stats["crossed_at"] < 15  # all wins: the wealth crosses almost at once
    assert result.verdict == "passed"
    assert result.stats["samples"] == 70  # the 10th control is record 80, after 70 pairs
    assert result.stats["controls"] == 10
    assert result.stats["records"] == 80
    assert result.stats["lower"] > 0.45


def test_without_controls_a_statistical_pass_is_inconclusive():
    result = run(simulate.Scenario(mu=0.6))
    assert (result.verdict, result.reason) == ("inconclusive", "InsufficientControls")
    assert result.stats["samples"] == 1200
    assert result.stats["crossed_at"] is not None
    allowed = run(simulate.Scenario(mu=0.6), min_controls=0)
    assert allowed.verdict == "passed"


def test_boundary_candidate_is_inconclusive_at_max_samples_or_when_evidence_ends():
    boundary = simulate.Scenario(mu=0.47, control_rate=0.1)
    reasons = collections.Counter(run(boundary, seed=seed, n=2000, max_samples=300).reason for seed in range(10))
    assert reasons["MaxSamplesReached"] >= 6
    short = run(boundary, n=60)
    assert (short.verdict, short.reason) == ("inconclusive", "EvidenceExhausted")
    assert short.stats["records"] == 60


def test_an_insensitive_judge_fails_the_run_whatever_the_test_says():
    undecided = run(simulate.Scenario(mu=0.5, control_rate=0.1, control_catch=0.5), max_samples=200)
    assert undecided.stats["crossed_at"] is None and undecided.stats["failed_at"] is None
    assert (undecided.verdict, undecided.reason) == ("failed", "JudgeInsensitive")
    worse = run(simulate.Scenario(mu=0.3, control_rate=0.3, control_catch=0.5), min_controls=3)
    assert worse.stats["failed_at"] is not None
    assert (worse.verdict, worse.reason) == ("failed", "JudgeInsensitive")


def test_candidates_on_the_same_pool_raise_the_bar_to_k_over_alpha():
    one = run(GUARDED)
    five = run(GUARDED, candidates=5)
    assert one.stats["threshold"] == pytest.approx(20)
    assert five.stats["threshold"] == pytest.approx(100)
    assert five.stats["crossed_at"] > one.stats["crossed_at"]


def test_decide_equals_the_incremental_procedure_and_is_deterministic():
    records = simulate.simulate_evidence(1500, simulate.Scenario(mu=0.53, control_rate=0.08, length_ratio=1.3), seed=7)
    first = decision.decide(records)
    again = decision.decide([r.to_dict() for r in records])  # JSON objects are read as records
    incremental = decision.Qualification()
    returned = [incremental.add(r) for r in records]
    decided_at = next(i for i, d in enumerate(returned) if d is not None)
    assert first.to_dict() == again.to_dict() == returned[decided_at].to_dict()
    assert first.stats["records"] == decided_at + 1
    assert all(d is returned[decided_at] for d in returned[decided_at:])  # later records are ignored
    assert incremental.finish() is returned[decided_at]


def test_finish_decides_on_the_evidence_seen_so_far():
    records = simulate.simulate_evidence(40, GUARDED, seed=1)
    qualification = decision.Qualification()
    assert all(qualification.add(r) is None for r in records)
    assert qualification.finish().to_dict() == decision.decide(records).to_dict()


# -- the report ------------------------------------------------------------------------------------------


def test_report_carries_every_number_and_is_json_safe():
    result = run(
        simulate.Scenario(
            mu=0.55, control_rate=0.1, length_ratio=1.3, format_pass_baseline=0.95, format_pass_candidate=0.95
        )
    )
    stats = result.stats
    for key in (
        "samples",
        "controls",
        "estimate",
        "lower",
        "upper",
        "p_value",
        "wealth",
        "tie_rate",
        "agreement_rate",
        "swap_consistency",
        "control_catch_rate",
        "length_ratio",
        "length_controlled_estimate",
        "length_controlled_lower",
        "format_pass_rate_baseline",
        "format_pass_rate_candidate",
        "judge_calls_made",
        "judge_calls_saved",
        "trajectory",
    ):
        assert key in stats
    assert stats["lower"] <= stats["estimate"] <= stats["upper"]
    assert 0 < stats["p_value"] <= 1
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["verdict"] == result.verdict


def test_trajectory_is_thinned_to_at_most_200_points_and_ends_at_the_decision():
    result = run(simulate.Scenario(mu=0.5, control_rate=0.1), max_samples=1200, futility=False)
    trajectory = result.stats["trajectory"]
    assert 100 <= len(trajectory) <= 200
    ns = [point[0] for point in trajectory]
    assert ns == sorted(ns) and ns[-1] == result.stats["samples"]
    lowers = [point[1] for point in trajectory]
    uppers = [point[2] for point in trajectory]
    assert lowers == sorted(lowers) and uppers == sorted(uppers, reverse=True)
    assert all(lo <= up for _, lo, up, _ in trajectory)


def test_judge_calls_made_and_saved_count_pairs_agreements_and_recorded_calls():
    records = [
        pair(0),
        evidence.EvidenceRecord(seq=1, id="a", agreement="exact"),
        evidence.EvidenceRecord(seq=2, id="b", agreement="numeric"),
        pair(3, judge_calls=3),  # a retried unparsable verdict
        caught_control(4),
    ]
    stats = decision.decide(records).stats
    assert stats["judge_calls_made"] == 2 + 3 + 2
    assert stats["judge_calls_saved"] == 4
    assert stats["agreement_rate"] == pytest.approx(0.5)
    assert stats["estimate"] == pytest.approx((1 + 0.5 + 0.5 + 1) / 4)


def test_swap_consistency_counts_an_invalid_verdict_as_inconsistent():
    records = [
        pair(0),
        evidence.EvidenceRecord(seq=1, id="x", judge=evidence.JudgeVerdicts("invalid", "invalid")),
        evidence.EvidenceRecord(seq=2, id="y", judge=evidence.JudgeVerdicts("candidate", "tie")),
        pair(3, "tie"),
    ]
    stats = decision.decide(records).stats
    assert stats["swap_consistency"] == pytest.approx(0.5)
    assert stats["tie_rate"] == pytest.approx(3 / 8)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("margin", 0.5),
        ("alpha", 0),
        ("candidates", 0),
        ("max_samples", 10),
        ("format_tolerance", -0.1),
        ("bets", (1.5,)),
    ],
)
def test_settings_out_of_range_name_the_setting(field, value):
    with pytest.raises(decision.SettingsError, match=field):
        decision.TestSettings(**{field: value})


def test_default_settings_are_the_documented_ones():
    settings = decision.TestSettings()
    assert (settings.margin, settings.alpha, settings.candidates) == (0.05, 0.05, 1)
    assert (settings.min_samples, settings.max_samples, settings.min_controls) == (50, 1200, 10)
    assert (settings.swap_consistency_min, settings.control_catch_min) == (0.75, 0.90)
    assert (settings.length_ratio_max, settings.format_tolerance) == (1.1, 0.02)
    assert math.isclose(settings.null_mean, 0.45)


# -- incremental and deterministic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario",
    [
        simulate.Scenario(mu=0.53, control_rate=0.08, length_ratio=1.3),
        simulate.Scenario(mu=0.5, control_rate=0.1, agreement_rate=0.6, position_bias=0.2),
        simulate.Scenario(mu=0.45, control_rate=0.1, prompt_independent=0.4),
    ],
)
def test_any_chunking_and_any_reads_give_the_same_decision_bounds_and_guardrails(scenario):
    records = simulate.simulate_evidence(1300, scenario, seed=21)
    reference = decision.decide(records).to_dict()
    rng = random.Random(22)
    for _ in range(4):
        qualification = decision.Qualification()
        position, decided = 0, None
        while position < len(records) and decided is None:
            size = rng.choice([1, 2, 7, 50, 300])
            decided = qualification.extend(records[position : position + size])
            position += size
            for _ in range(rng.randint(0, 3)):
                qualification.stats()  # reading in between changes nothing
        decided = decided or qualification.finish()
        assert decided.to_dict() == reference


def test_evidence_where_every_pair_agrees_can_pass():
    records = [evidence.EvidenceRecord(seq=i, id=f"a{i}", agreement="exact") for i in range(120)]
    result = decision.decide(records)
    assert (result.verdict, result.reason) == ("passed", "NonInferior")
    assert result.stats["judge_waived"] is True
    states = guardrail_states(result)
    assert states["control"] == states["swap"] == "not_applicable"


def test_a_good_judge_is_not_failed_by_the_noise_of_ten_controls():
    """8 of 10 controls caught: below 0.9 as a point estimate, but not confidently below it."""
    records = [pair(i) for i in range(120)]
    records += [caught_control(120 + i) for i in range(8)]
    records += [
        evidence.EvidenceRecord(seq=128 + i, id=f"m{i}", control=True, judge=evidence.JudgeVerdicts("tie", "tie"))
        for i in range(2)
    ]
    result = decision.decide(records)
    assert result.reason != "JudgeInsensitive"


def test_a_constant_answer_across_prompts_fails_as_prompt_independent():
    result = run(simulate.Scenario(mu=0.45, control_rate=0.1, prompt_independent=1.0))
    assert (result.verdict, result.reason) == ("failed", "PromptIndependent")
    assert result.stats["samples"] < 100

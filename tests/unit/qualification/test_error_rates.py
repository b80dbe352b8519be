"""Error rates of the decision, by simulation: false promotions under every judge bias, power, pairs needed.

Thousands of runs go through the numpy twin of the decision (betting_twin), which
test_twin_matches_the_decision holds to the real procedure record for record. Seeds are fixed, so every
rate below is reproducible; limits carry a binomial slack of three standard errors.

LENGTH_PREFERENCE is the simulated judge's taste for length, calibrated to the size GPT-4-turbo's has on
AlpacaEval data (worth 2-4 points of win rate at length ratios 1.05-1.1; docs/benchmarks.md has the
calibration): 0.35 moves a candidate at the margin by +2.6 points at ratio 1.05 and +3.7 at 1.1.
"""

from __future__ import annotations

import math

import betting_twin as twin
import numpy as np
import pytest

from assay.qualification import decision, evidence, fingerprint, simulate

RUNS = 2000
ALPHA = 0.05
LENGTH_PREFERENCE = 0.35
SETTINGS = decision.TestSettings(min_controls=0)  # the twin leaves controls to test_decision


def slack(rate: float, runs: int = RUNS) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def study(settings: decision.TestSettings = SETTINGS, *, seed: int, runs: int = RUNS, **model: float) -> twin.Outcome:
    return twin.decide(twin.simulate_pairs(runs, settings.max_samples, seed=seed, **model), settings)


def as_pairs(records: list[evidence.EvidenceRecord]) -> twin.Pairs:
    pairs = [r for r in records if not r.control]

    def row(values: list[float] | list[bool]) -> np.ndarray:
        return np.array([values])

    seen = fingerprint.NearDuplicates()
    repeated = [
        r.fingerprint is not None
        and r.agreement is None
        and seen.add(r.fingerprint.baseline or "0" * 16, r.fingerprint.candidate or "0" * 16)
        for r in pairs
    ]
    with_prints = any(r.fingerprint is not None for r in pairs)
    return twin.Pairs(
        row([decision.tested_score(r, 0.05) for r in pairs]).astype(float),
        row([r.agreement is not None or (r.judge is not None and r.judge.consistent) for r in pairs]),
        row([r.chars.baseline for r in pairs if r.chars]).astype(float) if pairs[0].chars else None,
        row([r.chars.candidate for r in pairs if r.chars]).astype(float) if pairs[0].chars else None,
        row([r.agreement is not None for r in pairs]),
        row(repeated) if with_prints else None,
    )


def test_twin_matches_the_decision():
    codes = {"passed": twin.PASSED, "failed": twin.FAILED, "inconclusive": twin.INCONCLUSIVE}
    scenarios = [
        simulate.Scenario(mu=0.45),
        simulate.Scenario(mu=0.5, tie_rate=0.0),
        simulate.Scenario(mu=0.55, position_bias=0.3),
        simulate.Scenario(mu=0.45, length_ratio=1.4, length_bias=0.6),
        simulate.Scenario(mu=0.6, length_ratio=1.3),
        simulate.Scenario(mu=0.5, agreement_rate=0.85),
        simulate.Scenario(mu=0.45, prompt_independent=0.5),
    ]
    mismatches = []
    for scenario in scenarios:
        for seed in range(4):
            records = simulate.simulate_evidence(1200, scenario, seed=seed)
            real = decision.decide(records, SETTINGS)
            replay = twin.decide(as_pairs(records), SETTINGS)
            if (codes[real.verdict], real.stats["samples"]) != (replay.verdict[0], replay.samples[0]):
                mismatches.append((scenario, seed, real.reason, real.stats["samples"], replay.reason[0]))
    assert mismatches == []


# -- false promotions at the boundary mu = 0.5 - margin, under every judge bias --------------------------


@pytest.mark.parametrize("tie_rate", [0.0, 0.3, 0.5, 0.85])
def test_false_promotion_at_the_boundary_is_at_most_alpha(tie_rate):
    outcome = study(seed=11, mu=0.45, tie_rate=tie_rate)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)


@pytest.mark.parametrize("position_bias", [0.05, 0.1, 0.2, 0.3, 0.6])
def test_a_judge_favouring_the_first_shown_answer_cannot_promote_a_boundary_candidate(position_bias):
    """Position bias pulls s towards 0.5 (0.45 becomes 0.45 + 0.05 p); the position-corrected score does not
    move at the margin, so the test alone holds, with the swap guardrail switched off."""
    unguarded = decision.TestSettings(min_controls=0, swap_consistency_min=0.0)
    outcome = study(unguarded, seed=12, mu=0.45, position_bias=position_bias)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)


def test_without_the_position_correction_a_mildly_biased_judge_promotes_more_than_alpha():
    uncorrected = decision.TestSettings(min_controls=0, position_correction=False)
    pairs = twin.simulate_pairs(RUNS, 1200, mu=0.45, position_bias=0.2, margin=0.0, seed=12)  # raw scores
    assert twin.decide(pairs, uncorrected).rate(twin.PASSED) > ALPHA + slack(ALPHA)


@pytest.mark.parametrize("length_ratio", [1.0, 1.05, 1.1, 1.15, 1.25])
def test_a_judge_favouring_longer_answers_cannot_promote_a_boundary_candidate_at_any_ratio(length_ratio):
    outcome = study(seed=13, mu=0.45, length_ratio=length_ratio, length_bias=LENGTH_PREFERENCE, lengths=True)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)


def test_length_and_position_bias_together_cannot_promote_a_boundary_candidate():
    outcome = study(seed=14, mu=0.45, length_ratio=1.05, length_bias=LENGTH_PREFERENCE, position_bias=0.15)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)


def test_the_raw_test_alone_would_promote_a_length_preferred_candidate():
    pairs = twin.simulate_pairs(RUNS, 1200, mu=0.45, length_ratio=1.1, length_bias=LENGTH_PREFERENCE, seed=13)
    no_lengths = twin.Pairs(pairs.scores, pairs.consistent, agreed=pairs.agreed)
    assert twin.decide(no_lengths, SETTINGS).rate(twin.PASSED) > 0.3


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_a_prompt_independent_answer_that_fools_the_judge_is_not_promoted(share):
    outcome = study(seed=15, mu=0.45, prompt_independent=share, exploit_win=0.8)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)
    assert np.mean(outcome.reason == "PromptIndependent") > 0.9


# -- power and pairs needed --------------------------------------------------------------------------------


@pytest.mark.parametrize("tie_rate", [0.3, 0.85])
def test_an_equal_candidate_passes_within_1200_pairs_with_power_of_at_least_95_percent(tie_rate):
    """With the swap guardrail, the judge waiver, the repeat check (fingerprints) and position correction on."""
    outcome = study(seed=16, mu=0.5, tie_rate=tie_rate, fingerprints=True)
    assert outcome.rate(twin.PASSED) >= 0.95


def test_the_length_guardrail_costs_an_equal_candidate_a_few_points_of_power():
    """Measured lengths (equal on average) bring the always-on length check in: 0.931 against 0.954 here
    (docs/benchmarks.md lists each guardrail's cost and why 0.95 is not reached with lengths)."""
    outcome = study(seed=16, mu=0.5, lengths=True, fingerprints=True)
    assert outcome.rate(twin.PASSED) >= 0.92


@pytest.mark.parametrize(("mu", "verdict"), [(0.40, twin.FAILED), (0.55, twin.PASSED)])
def test_clear_cases_are_decided_within_200_pairs_on_average(mu, verdict):
    outcome = study(seed=17, mu=mu, tie_rate=0.3)
    assert outcome.samples.mean() <= 200
    assert outcome.rate(verdict) >= 0.99


def test_evidence_where_most_answers_agree_is_decided_in_fewer_pairs():
    ordinary = study(seed=18, mu=0.5, tie_rate=0.3)
    agreeing = study(seed=18, mu=0.5, tie_rate=0.0, agreement_rate=0.85)
    assert agreeing.rate(twin.PASSED) >= 0.95
    assert agreeing.samples.mean() < 0.5 * ordinary.samples.mean()


# -- traps ---------------------------------------------------------------------------------------------------


def test_picking_the_best_of_k_prompt_variants_inflates_false_promotions_unless_k_corrects_alpha():
    k = 5
    pairs = twin.simulate_pairs(RUNS * k, 1200, mu=0.45, seed=19)
    best = pairs.scores.reshape(RUNS, k, -1).mean(axis=2).argmax(axis=1)  # the variant that looks best
    chosen = np.arange(RUNS) * k + best

    def promoted(settings: decision.TestSettings) -> float:
        return twin.decide(pairs, settings).verdict[chosen].__eq__(twin.PASSED).mean()

    naive = promoted(decision.TestSettings(min_controls=0))
    corrected = promoted(decision.TestSettings(min_controls=0, candidates=k))
    assert naive > ALPHA + slack(ALPHA)
    assert corrected <= ALPHA + slack(ALPHA)


def test_peeking_at_a_fixed_sample_test_inflates_false_promotions():
    """The z-test sized for 80% power at n = 433 keeps its 5% when looked at once; looked at every 10 pairs
    and stopped at the first significant look, it promotes a boundary candidate far more often."""
    rng = np.random.default_rng(20)
    u = rng.random((RUNS, 433))
    scores = np.where(u < 0.30, 1.0, np.where(u < 0.60, 0.5, 0.0))  # mu = 0.45, 30% ties
    n = np.arange(1, 434)
    mean = np.cumsum(scores, axis=1) / n
    var = np.maximum(np.cumsum(scores**2, axis=1) / n - mean**2, 1e-12)
    z = (mean - 0.45) / np.sqrt(var / n)
    once = (z[:, -1] > 1.645).mean()
    looks = np.arange(49, 433, 10)
    peeking = (z[:, looks] > 1.645).any(axis=1).mean()
    assert once <= ALPHA + slack(ALPHA)
    assert peeking >= 2 * ALPHA

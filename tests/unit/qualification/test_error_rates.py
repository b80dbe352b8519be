"""Error rates of the decision, by simulation: false promotions, power, pairs needed, and the traps it avoids.

Thousands of runs go through the numpy twin of the decision (betting_twin), which
test_twin_matches_the_decision holds to the real procedure record for record. Seeds are fixed, so every
rate below is reproducible; limits carry a binomial slack of three standard errors.
"""

from __future__ import annotations

import math

import betting_twin as twin
import numpy as np
import pytest

from assay.qualification import decision, evidence, simulate

RUNS = 2000
ALPHA = 0.05
SETTINGS = decision.TestSettings(min_controls=0)  # the twin leaves controls to test_decision


def slack(rate: float, runs: int = RUNS) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def study(settings: decision.TestSettings = SETTINGS, *, seed: int, **model: float) -> twin.Outcome:
    return twin.decide(twin.simulate_pairs(RUNS, settings.max_samples, seed=seed, **model), settings)


def as_pairs(records: list[evidence.EvidenceRecord]) -> twin.Pairs:
    def row(values: list[float]) -> np.ndarray:
        return np.array([values], dtype=float)

    return twin.Pairs(
        row([evidence.score(r) for r in records]),
        np.array([[r.judge is not None and r.judge.consistent for r in records]]),
        row([r.chars.baseline for r in records if r.chars and r.chars.baseline]),
        row([r.chars.candidate for r in records if r.chars and r.chars.candidate]),
    )


def test_twin_matches_the_decision():
    codes = {"passed": twin.PASSED, "failed": twin.FAILED, "inconclusive": twin.INCONCLUSIVE}
    scenarios = [
        simulate.Scenario(mu=0.45),
        simulate.Scenario(mu=0.5, tie_rate=0.0),
        simulate.Scenario(mu=0.55, position_bias=0.3),
        simulate.Scenario(mu=0.45, length_ratio=1.4, length_bias=0.6),
        simulate.Scenario(mu=0.6, length_ratio=1.3),
    ]
    mismatches = []
    for scenario in scenarios:
        for seed in range(6):
            records = simulate.simulate_evidence(1200, scenario, seed=seed)
            real = decision.decide(records, SETTINGS)
            replay = twin.decide(as_pairs(records), SETTINGS)
            if (codes[real.verdict], real.stats["samples"]) != (replay.verdict[0], replay.samples[0]):
                mismatches.append((scenario, seed, real.reason, replay.reason[0]))
    # The twin's length-controlled bound is analytic, the runtime's a bootstrap: they may part only on a
    # length look that lands within bootstrap noise of the bar.
    assert len(mismatches) <= 1, mismatches
    assert all(m[0].length_ratio > 1 for m in mismatches)


# -- false promotions at the boundary mu = 0.5 - margin --------------------------------------------------


@pytest.mark.parametrize("tie_rate", [0.0, 0.3, 0.5])
def test_false_promotion_at_the_boundary_is_at_most_alpha(tie_rate):
    outcome = study(seed=11, mu=0.45, tie_rate=tie_rate)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)


def test_a_judge_favouring_the_first_shown_answer_cannot_promote_a_boundary_candidate():
    """Position bias is symmetric over the two orders, so it favours neither side, but it turns real wins and
    losses into splits and so pulls s towards 0.5: for a candidate below 0.5 that is a push upwards (here
    0.45 becomes 0.465). The swap-consistency guardrail is what stops it."""
    outcome = study(seed=12, mu=0.45, position_bias=0.3)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)
    unguarded = study(
        decision.TestSettings(min_controls=0, swap_consistency_min=0.0), seed=12, mu=0.45, position_bias=0.3
    )
    assert unguarded.rate(twin.PASSED) > 2 * ALPHA
    assert np.mean(outcome.reason == "SwapInconsistent") > 0.9 * unguarded.rate(twin.PASSED)


def test_a_judge_favouring_longer_answers_is_caught_by_the_length_guardrail():
    outcome = study(seed=13, mu=0.45, length_ratio=1.4, length_bias=0.6)
    assert outcome.rate(twin.PASSED) <= ALPHA + slack(ALPHA)
    assert np.mean(outcome.reason == "LengthBiased") > 0.9
    unguarded = study(
        decision.TestSettings(min_controls=0, length_ratio_max=100.0),
        seed=13,
        mu=0.45,
        length_ratio=1.4,
        length_bias=0.6,
    )
    assert unguarded.rate(twin.PASSED) > 0.9  # the raw scores alone would promote it


# -- power and pairs needed --------------------------------------------------------------------------------


def test_an_equal_candidate_passes_within_1200_pairs_with_power_of_at_least_80_percent():
    outcome = study(seed=14, mu=0.5, tie_rate=0.3)
    assert outcome.rate(twin.PASSED) >= 0.80 + slack(0.80)


@pytest.mark.parametrize(("mu", "verdict"), [(0.40, twin.FAILED), (0.55, twin.PASSED)])
def test_clear_cases_are_decided_within_150_pairs_on_average(mu, verdict):
    outcome = study(seed=15, mu=mu, tie_rate=0.3)
    assert outcome.samples.mean() <= 150
    assert outcome.rate(verdict) >= 0.99


# -- traps ---------------------------------------------------------------------------------------------------


def test_picking_the_best_of_k_prompt_variants_inflates_false_promotions_unless_k_corrects_alpha():
    k = 5
    pairs = twin.simulate_pairs(RUNS * k, 1200, mu=0.45, seed=16)
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
    rng = np.random.default_rng(17)
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

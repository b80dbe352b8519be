"""The betting test and its confidence sequence, checked against the definitions computed by brute force."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from assay.qualification import sequential, simulate


def levels(scores: list[float]) -> list[int]:
    """The bet scale level before each score: from the dispersion of the scores before it only."""
    out, dispersion = [], 0.0
    for n, s in enumerate(scores):
        out.append(sequential.scale_level(dispersion, n))
        dispersion += (s - 0.5) ** 2
    return out


def brute_log_wealth(scores: list[float], m: float, direction: int) -> float:
    """log of the weighted mean over the bets of prod_i (1 + (c_i / m') (y_i - m')), term by term: y = s, m' = m for
    the lower side (direction +1), y = 1 - s, m' = 1 - m for the upper side."""
    wealths = []
    for j in range(len(sequential.DEFAULT_BETS)):
        wealth = 1.0
        for s, level in zip(scores, levels(scores), strict=True):
            c = sequential.fractions(sequential.DEFAULT_BETS, level)[j]
            y, mean = (s, m) if direction > 0 else (1 - s, 1 - m)
            wealth *= 1 + c / mean * (y - mean)
        wealths.append(wealth)
    weights = sequential.DEFAULT_WEIGHTS
    return math.log(sum(w * v for w, v in zip(weights, wealths, strict=True)) / sum(weights))


def counts_of(scores: list[float], side: str) -> dict[tuple[int, float], int]:
    out: dict[tuple[int, float], int] = {}
    for s, level in zip(scores, levels(scores), strict=True):
        key = (level, s if side == "lower" else 1 - s)
        out[key] = out.get(key, 0) + 1
    return out


def test_wealth_is_the_average_of_the_scaled_bet_wealth_processes():
    scores = simulate.simulate_scores(300, mu=0.55, seed=1)
    test = sequential.BettingTest(0.45, 0.05)
    peak = 0.0
    for n, s in enumerate(scores, start=1):
        test.update(s)
        expected = brute_log_wealth(scores[:n], 0.45, +1)
        assert test.log_wealth == pytest.approx(expected, abs=1e-9)
        peak = max(peak, expected)
    assert test.p_value == pytest.approx(min(1.0, math.exp(-peak)), rel=1e-9)
    first = next(n for n in range(1, 301) if brute_log_wealth(scores[:n], 0.45, +1) >= math.log(20))
    assert test.crossed_at == first


def test_bets_are_scaled_up_where_the_scores_agree_and_every_factor_stays_positive():
    assert levels([0.5] * 200)[-1] == 12  # no dispersion: the largest scale, 8x
    assert levels([0.0, 1.0] * 100)[-1] < 0  # more dispersed than the reference: smaller bets
    assert max(sequential.fractions(sequential.DEFAULT_BETS, 12)) == sequential.MAX_FRACTION
    test = sequential.BettingTest(0.45, 0.05)
    for _ in range(60):
        test.update(0.5)  # identical answers: the strongest evidence of equivalence
    assert test.crossed_at is not None and test.crossed_at <= 60
    assert test.lower > 0.45


def test_bounds_invert_the_tests_and_err_only_on_the_wide_side():
    scores = simulate.simulate_scores(400, mu=0.52, tie_rate=0.3, seed=2)
    lower = sequential.lower_bound(counts_of(scores, "lower"), alpha=0.05)
    upper = 1 - sequential.lower_bound(counts_of(scores, "upper"), alpha=0.05)
    # Rejected below the lower bound, not rejected just above it; the mirror image for the upper bound.
    assert brute_log_wealth(scores, lower, +1) >= math.log(20)
    assert brute_log_wealth(scores, lower + 1e-6, +1) < math.log(20)
    assert brute_log_wealth(scores, upper, -1) >= math.log(20)
    assert brute_log_wealth(scores, upper - 1e-6, -1) < math.log(20)
    assert lower < sum(scores) / len(scores) < upper


def test_bounds_are_the_running_intersection_over_every_time_whatever_was_read():
    scores = simulate.simulate_scores(400, mu=0.5, seed=3)
    test = sequential.BettingTest(0.45, 0.05)
    lowers, uppers = [], []
    for n, s in enumerate(scores, start=1):
        test.update(s)
        lowers.append(test.lower)
        uppers.append(test.upper)
        if n % 50 == 0:
            at_n_lower = max(
                sequential.lower_bound(counts_of(scores[:t], "lower"), alpha=0.05) for t in range(1, n + 1)
            )
            at_n_upper = min(
                1 - sequential.lower_bound(counts_of(scores[:t], "upper"), alpha=0.05) for t in range(1, n + 1)
            )
            assert test.lower == pytest.approx(at_n_lower, abs=2e-7)
            assert test.upper == pytest.approx(at_n_upper, abs=2e-7)
    assert lowers == sorted(lowers)
    assert uppers == sorted(uppers, reverse=True)
    unread = sequential.BettingTest(0.45, 0.05)
    for s in scores:
        unread.update(s)
    assert (unread.lower, unread.upper) == (test.lower, test.upper)  # reading them changed nothing


def test_crossing_is_final_and_the_lower_bound_then_clears_m0():
    test = sequential.BettingTest(0.45, 0.05)
    for s in [1.0] * 12:
        test.update(s)
    assert test.crossed_at is not None
    assert test.lower > 0.45
    for s in [0.0] * 40:  # a run of losses lowers the wealth but cannot undo the crossing
        test.update(s)
    assert test.wealth < 20
    assert test.crossed_at is not None and test.lower > 0.45


def test_failed_at_marks_the_upper_bound_falling_below_the_watched_mean():
    test = sequential.BettingTest(0.45, 0.05, fail_at=0.5)
    n = 0
    while test.failed_at is None:
        test.update(0.0)
        n += 1
    assert test.failed_at == n
    assert test.upper < 0.5
    earlier = sequential.BettingTest(0.45, 0.05, fail_at=0.5)
    for _ in range(n - 1):
        earlier.update(0.0)
    assert earlier.upper >= 0.5  # one score earlier the bound was still at or above 0.5


def test_futility_is_a_separate_test_at_its_own_level():
    plain = sequential.BettingTest(0.45, 0.05)
    futile = sequential.BettingTest(0.45, 0.05, futility_at=0.5, futility_alpha=0.01)
    for s in simulate.simulate_scores(400, mu=0.35, seed=6):
        plain.update(s)
        futile.update(s)
    assert futile.failed_at is not None and futile.futile
    assert plain.failed_at is None or futile.failed_at < plain.failed_at
    assert futile.upper == plain.upper  # the reported bound stays the level-alpha one


def test_scores_of_any_value_in_the_unit_interval_are_accepted():
    rng = random.Random(4)
    scores = [rng.betavariate(2, 2) for _ in range(300)]
    test = sequential.BettingTest(0.3, 0.05)
    for s in scores:
        test.update(s)
    assert test.lower > 0.3 and test.crossed_at is not None
    assert test.log_wealth == pytest.approx(brute_log_wealth(scores, 0.3, +1), abs=1e-9)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_scores_outside_the_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        sequential.BettingTest(0.45, 0.05).update(bad)


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="m0"):
        sequential.BettingTest(1.0, 0.05)
    with pytest.raises(ValueError, match="alpha"):
        sequential.BettingTest(0.45, 0.0)
    with pytest.raises(ValueError, match="bets"):
        sequential.BettingTest(0.45, 0.05, bets=(0.5, 1.2))


def test_rate_bounds_cover_a_rate_and_settle_fast_when_it_is_extreme():
    perfect = sequential.RateBounds(0.025)
    for _ in range(12):
        perfect.update(True)
    assert perfect.lower > 0.5 and perfect.upper == 1.0
    rng = np.random.default_rng(7)
    misses = 0
    for _ in range(300):
        bounds = sequential.RateBounds(0.05)
        hits = rng.random(100) < 0.8
        covered = True
        for hit in hits:
            bounds.update(bool(hit))
            covered &= bounds.lower <= 0.8 <= bounds.upper
        misses += not covered
    assert misses / 300 <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / 300)  # each side at 5%


def numpy_wealth(scores: np.ndarray, m: float) -> np.ndarray:
    """The mixture wealth against m, betting on scores above m, for many runs at once (the scaled bets)."""
    runs, n = scores.shape
    before = np.concatenate([np.zeros((runs, 1)), np.cumsum((scores - 0.5) ** 2, axis=1)[:, :-1]], axis=1)
    ref, prior = sequential.REFERENCE_DISPERSION, sequential.PRIOR_SCORES
    estimate = (ref * prior + before) / (prior + np.arange(n))
    level = np.clip(np.round(np.log2(ref / np.maximum(estimate, 1e-12)) / 0.25), -4, 12)
    scale = 2.0 ** (level * 0.25)
    wealth = np.zeros(scores.shape)
    weights = np.array(sequential.DEFAULT_WEIGHTS) / sum(sequential.DEFAULT_WEIGHTS)
    for bet, weight in zip(sequential.DEFAULT_BETS, weights, strict=True):
        c = np.minimum(sequential.MAX_FRACTION, bet * scale)
        wealth += weight * np.exp(np.minimum(np.cumsum(np.log1p(c / m * (scores - m)), axis=1), 700))
    return wealth


@pytest.mark.parametrize("tie_rate", [0.3, 0.85])
def test_confidence_sequence_covers_the_true_mean_at_all_times(tie_rate):
    """Time-uniform coverage, by simulation: the true mean is ever rejected on either side in at most alpha
    of 2000 runs of 1200 scores, with ordinary and with agreement-heavy evidence (the large bets)."""
    rng = np.random.default_rng(5)
    mu, runs = 0.5, 2000
    u = rng.random((runs, 1200))
    scores = np.where(u < mu - tie_rate / 2, 1.0, np.where(u < mu + tie_rate / 2, 0.5, 0.0))
    for y, m in ((scores, mu), (1 - scores, 1 - mu)):
        rejected = (numpy_wealth(y, m) >= 20).any(axis=1).mean()
        assert rejected <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)

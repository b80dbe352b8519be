"""The betting test and its confidence sequence, checked against the definitions computed by brute force."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from assay.qualification import sequential, simulate


def brute_log_wealth(scores: list[float], m: float, direction: int) -> float:
    """log of the mean over the bets of prod_i (1 + bet * direction * (s_i - m)), term by term."""
    wealths = [math.prod(1 + bet * direction * (s - m) for s in scores) for bet in sequential.DEFAULT_BETS]
    return math.log(sum(wealths) / len(wealths))


def test_wealth_is_the_average_of_constant_bet_wealth_processes():
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


def test_bounds_invert_the_tests_and_err_only_on_the_wide_side():
    scores = simulate.simulate_scores(400, mu=0.52, tie_rate=0.3, seed=2)
    counts = {v: scores.count(v) for v in set(scores)}
    lower = sequential.confidence_bound(counts, alpha=0.05, side="lower")
    upper = sequential.confidence_bound(counts, alpha=0.05, side="upper")
    # Rejected below the lower bound, not rejected just above it; the mirror image for the upper bound.
    assert brute_log_wealth(scores, lower, +1) >= math.log(20)
    assert brute_log_wealth(scores, lower + 1e-6, +1) < math.log(20)
    assert brute_log_wealth(scores, upper, -1) >= math.log(20)
    assert brute_log_wealth(scores, upper - 1e-6, -1) < math.log(20)
    assert lower < sum(scores) / len(scores) < upper


def test_bounds_are_running_intersections():
    test = sequential.BettingTest(0.45, 0.05)
    lowers, uppers = [], []
    for s in simulate.simulate_scores(500, mu=0.5, seed=3):
        test.update(s)
        lowers.append(test.lower)
        uppers.append(test.upper)
    assert lowers == sorted(lowers)
    assert uppers == sorted(uppers, reverse=True)
    assert lowers[0] == 0.0 and uppers[0] == 1.0  # one score rejects nothing at 5%


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
    # One score earlier the bound was still at or above 0.5.
    earlier = sequential.confidence_bound({0.0: n - 1}, alpha=0.05, side="upper")
    assert earlier >= 0.5


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


def test_confidence_sequence_covers_the_true_mean_at_all_times():
    """Time-uniform coverage, by simulation: the true mean is ever rejected on either side in at most alpha
    of 2000 runs of 1200 scores (the bounds are the inversion of these crossings, checked above)."""
    rng = np.random.default_rng(5)
    mu, runs = 0.45, 2000
    u = rng.random((runs, 1200))
    scores = np.where(u < mu - 0.15, 1.0, np.where(u < mu + 0.15, 0.5, 0.0))
    for direction in (+1, -1):
        wealth = np.zeros(scores.shape)
        for bet in sequential.DEFAULT_BETS:
            wealth += np.exp(np.cumsum(np.log1p(bet * direction * (scores - mu)), axis=1))
        rejected = (wealth / len(sequential.DEFAULT_BETS) >= 20).any(axis=1).mean()
        assert rejected <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)

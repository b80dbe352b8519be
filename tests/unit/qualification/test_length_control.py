"""The length-controlled estimate: AlpacaEval 2.0's GLM with a difficulty term and ridge-regularized slopes."""

from __future__ import annotations

import math
import random

import pytest

from assay.qualification import evidence, length_control, simulate


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def logistic_pairs(
    n: int, *, intercept: float, slope: float, difficulty: float = 0.0, ratio: float = 1.3, seed: int
) -> tuple[list[int], list[int], list[float]]:
    """Pairs whose preference follows the model: P(candidate) = sigmoid(a + b tanh(d / sd(d)) + g z), with z the
    standardized log length of the baseline's answer (long baseline answers: hard items)."""
    rng = random.Random(seed)
    logs = [rng.gauss(0, 0.4) for _ in range(n)]
    base = [round(800 * math.exp(v)) for v in logs]
    cand = [round(b * ratio * math.exp(rng.gauss(0, 0.35))) for b in base]
    diffs = [c - b for b, c in zip(base, cand, strict=True)]
    spread = (sum(d * d for d in diffs) / n - (sum(diffs) / n) ** 2) ** 0.5
    scores = []
    for d, v in zip(diffs, logs, strict=True):
        p = sigmoid(intercept + slope * math.tanh(d / spread) + difficulty * v / 0.4)
        scores.append(float(rng.random() < p))
    return base, cand, scores


def test_fit_recovers_the_model_and_predicts_at_equal_length():
    base, cand, scores = logistic_pairs(20000, intercept=-0.2, slope=1.5, difficulty=-0.5, seed=1)
    fit = length_control.length_controlled(base, cand, scores)
    assert fit.slope == pytest.approx(1.5, abs=0.1)
    assert fit.difficulty == pytest.approx(-0.5, abs=0.06)
    expected = sum(sigmoid(-0.2 - 0.5 * z) for z in [math.log(b / 800) / 0.4 for b in base]) / len(base)
    assert fit.estimate == pytest.approx(expected, abs=0.015)
    assert fit.estimate < sum(scores) / len(scores)  # the raw win rate is inflated by the longer answers
    assert fit.effect == pytest.approx(sum(scores) / len(scores) - fit.estimate, abs=0.01)


def test_without_the_difficulty_term_the_slope_soaks_up_difficulty():
    """The candidate loses on hard items, where answers are long: the minimal model blames length."""
    base, cand, scores = logistic_pairs(20000, intercept=0.0, slope=0.0, difficulty=-1.0, ratio=1.3, seed=2)
    full = length_control.length_controlled(base, cand, scores)
    minimal = length_control.length_controlled(base, cand, scores, difficulty=False)
    assert abs(full.slope) < 0.1
    assert abs(minimal.slope) > 2 * abs(full.slope)


def test_a_preference_for_length_alone_is_removed():
    records = simulate.simulate_evidence(3000, simulate.Scenario(mu=0.45, length_ratio=1.4, length_bias=0.6), seed=2)
    base = [r.chars.baseline for r in records if r.chars and r.chars.baseline]
    cand = [r.chars.candidate for r in records if r.chars and r.chars.candidate]
    scores = [evidence.score(r) for r in records]
    fit = length_control.length_controlled(base, cand, scores)
    assert sum(scores) / len(scores) > 0.55  # the judge's taste for length shows in the raw mean
    assert fit.estimate == pytest.approx(0.45, abs=0.03)
    assert fit.lower < 0.45 + 0.01
    assert fit.slope > 0


def test_ridge_keeps_the_fit_defined_and_fades_with_evidence():
    few = length_control.length_controlled([500, 600, 700], [900, 950, 1000], [1.0, 1.0, 1.0])
    assert few.estimate > 0.9  # all wins, one-sided lengths: finite, no blow-up
    base, cand, scores = logistic_pairs(2000, intercept=0.0, slope=1.0, seed=3)
    loose = length_control.length_controlled(base, cand, scores, ridge=0.0)
    ridged = length_control.length_controlled(base, cand, scores)
    assert ridged.slope == pytest.approx(loose.slope, rel=0.02)


def test_without_length_differences_the_estimate_is_the_mean():
    fit = length_control.length_controlled([500] * 8, [500] * 8, [1, 0.5, 0.5, 0, 1, 1, 0.75, 0.25])
    assert fit.estimate == pytest.approx(0.625)
    assert fit.slope == 0.0 and fit.effect == pytest.approx(0.0)


def test_the_bounds_are_deterministic_and_either_side_of_the_estimate():
    base, cand, scores = logistic_pairs(300, intercept=0.0, slope=1.0, seed=4)
    first = length_control.length_controlled(base, cand, scores, level=0.01)
    assert first == length_control.length_controlled(base, cand, scores, level=0.01)
    assert first.lower < first.estimate < first.upper


def test_the_bound_covers_the_length_controlled_mean_at_its_level():
    misses = 0
    for seed in range(200):
        base, cand, scores = logistic_pairs(300, intercept=0.0, slope=0.8, ratio=1.2, seed=100 + seed)
        misses += length_control.length_controlled(base, cand, scores, level=0.05).lower > 0.5
    assert misses / 200 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_the_upper_bound_covers_the_length_controlled_mean_at_its_level():
    misses = 0
    for seed in range(200):
        base, cand, scores = logistic_pairs(300, intercept=0.0, slope=0.8, ratio=1.2, seed=100 + seed)
        misses += length_control.length_controlled(base, cand, scores, level=0.05).upper < 0.5
    assert misses / 200 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_refuses_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="one baseline length"):
        length_control.length_controlled([1, 2], [1], [0.5, 0.5])
    with pytest.raises(ValueError, match="level"):
        length_control.length_controlled([1], [1], [0.5], level=0.0)

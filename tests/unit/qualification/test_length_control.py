"""The length-controlled estimate: the preference at equal length, as AlpacaEval 2.0 computes it."""

from __future__ import annotations

import math
import random

import betting_twin
import numpy as np
import pytest

from assay.qualification import evidence, length_control, simulate


def logistic_pairs(n: int, *, intercept: float, slope: float, seed: int) -> tuple[list[int], list[int], list[float]]:
    """Pairs whose preference follows the model exactly: P(candidate) = sigmoid(a + b tanh(d / sd(d)))."""
    rng = random.Random(seed)
    base = [round(800 * math.exp(rng.gauss(0, 0.4))) for _ in range(n)]
    cand = [round(b * 1.3 * math.exp(rng.gauss(0, 0.35))) for b in base]
    diffs = [c - b for b, c in zip(base, cand, strict=True)]
    spread = (sum(d * d for d in diffs) / n - (sum(diffs) / n) ** 2) ** 0.5
    scores = []
    for d in diffs:
        p = 1 / (1 + math.exp(-(intercept + slope * math.tanh(d / spread))))
        scores.append(float(rng.random() < p))
    return base, cand, scores


def test_fit_recovers_the_model_and_predicts_at_equal_length():
    base, cand, scores = logistic_pairs(20000, intercept=-0.2, slope=1.5, seed=1)
    x_spread = np.std(np.subtract(cand, base))
    a, b = length_control.fit_logistic(
        [math.tanh((c - b0) / x_spread) for b0, c in zip(base, cand, strict=True)], scores
    )
    assert a == pytest.approx(-0.2, abs=0.06)
    assert b == pytest.approx(1.5, abs=0.1)
    fit = length_control.length_controlled(base, cand, scores, resamples=50)
    assert fit.estimate == pytest.approx(1 / (1 + math.exp(0.2)), abs=0.015)
    assert fit.estimate < sum(scores) / len(scores)  # the raw win rate is inflated by the longer answers


def test_a_preference_for_length_alone_is_removed():
    records = simulate.simulate_evidence(3000, simulate.Scenario(mu=0.45, length_ratio=1.4, length_bias=0.6), seed=2)
    base = [r.chars.baseline for r in records if r.chars and r.chars.baseline]
    cand = [r.chars.candidate for r in records if r.chars and r.chars.candidate]
    scores = [evidence.score(r) for r in records]
    fit = length_control.length_controlled(base, cand, scores, resamples=100, seed=3)
    assert sum(scores) / len(scores) > 0.55  # the judge's taste for length shows in the raw mean
    assert fit.estimate == pytest.approx(0.45, abs=0.03)
    assert fit.lower < 0.45 + 0.01
    assert fit.slope > 0


def test_without_length_differences_the_estimate_is_the_mean():
    fit = length_control.length_controlled([500] * 8, [500] * 8, [1, 0.5, 0.5, 0, 1, 1, 0.75, 0.25], resamples=20)
    assert fit.estimate == pytest.approx(0.625)
    assert fit.slope == 0.0


def test_bootstrap_is_seeded_and_reproducible():
    base, cand, scores = logistic_pairs(300, intercept=0.0, slope=1.0, seed=4)
    first = length_control.length_controlled(base, cand, scores, seed=9)
    assert first == length_control.length_controlled(base, cand, scores, seed=9)
    assert first.lower < first.estimate


def test_bootstrap_bound_agrees_with_the_sandwich_bound_of_the_numpy_twin():
    """The simulation studies use the twin's analytic bound; here it is held to the runtime's bootstrap."""
    for seed in range(4):
        records = simulate.simulate_evidence(
            400, simulate.Scenario(mu=0.5, length_ratio=1.3, length_bias=0.3), seed=seed
        )
        base = [r.chars.baseline for r in records if r.chars and r.chars.baseline]
        cand = [r.chars.candidate for r in records if r.chars and r.chars.candidate]
        scores = [evidence.score(r) for r in records]
        runtime = length_control.length_controlled(base, cand, scores, level=0.01, resamples=500, seed=seed)
        pairs = betting_twin.Pairs(
            np.array([scores]), np.ones((1, 400), dtype=bool), np.array([base], float), np.array([cand], float)
        )
        twin = betting_twin.length_lower_bounds(pairs, np.array([400]), level=0.01)[0]
        assert runtime.lower == pytest.approx(twin, abs=0.008)


def test_refuses_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="one baseline length"):
        length_control.length_controlled([1, 2], [1], [0.5, 0.5])
    with pytest.raises(ValueError, match="level"):
        length_control.length_controlled([1], [1], [0.5], level=0.0)

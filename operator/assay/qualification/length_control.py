"""The length-controlled estimate: what the candidate would score if both answers were equally long.

As AlpacaEval 2.0 does, the preference is modelled by a logistic regression on tanh of the standardized
length difference, P(candidate preferred) = sigmoid(a + b * tanh((chars_c - chars_b) / sd)), and the estimate
is the prediction at zero difference, sigmoid(a). The target is the fractional score s in [0, 1] (a
quasi-binomial fit), solved by Newton's method (IRLS) with step halving. The lower bound comes from a
bootstrap over pairs: the standard deviation of the resampled intercepts gives sigmoid(a - z * sd), a normal
bound on the logit scale, which stays inside (0, 1) and, unlike a raw percentile, is stable at the small
levels a Bonferroni split asks for. Each resample takes one Newton step from the full-data fit (the one-step
bootstrap), which agrees with refitting to O(1/n) and costs a few sums per resample, so a few hundred
resamples take milliseconds. Pure Python; randomness from a seeded random.Random, so results reproduce.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Sequence

_MAX_ITERATIONS = 50


@dataclasses.dataclass(frozen=True, slots=True)
class LengthControlled:
    """The estimate at equal length, its bootstrap lower bound, and the fitted length slope."""

    estimate: float
    lower: float
    slope: float
    pairs: int


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _quasi_log_likelihood(a: float, b: float, x: Sequence[float], s: Sequence[float]) -> float:
    total = 0.0
    for xi, si in zip(x, s, strict=True):
        p = min(max(_sigmoid(a + b * xi), 1e-15), 1 - 1e-15)
        total += si * math.log(p) + (1.0 - si) * math.log(1.0 - p)
    return total


def fit_logistic(x: Sequence[float], s: Sequence[float]) -> tuple[float, float]:
    """Intercept and slope of the quasi-binomial logistic fit of s in [0, 1] on x (Newton with step halving).

    A mean score of exactly 0 or 1 has no finite fit: the intercept is then clipped at +-30.
    """
    mean = sum(s) / len(s)
    if mean <= 0.0 or mean >= 1.0:
        return (-30.0 if mean <= 0.0 else 30.0), 0.0
    a, b = math.log(mean / (1.0 - mean)), 0.0
    current = _quasi_log_likelihood(a, b, x, s)
    for _ in range(_MAX_ITERATIONS):
        step = _newton_step(a, b, x, s)
        if step is None:
            break
        da, db = step
        scale = 1.0
        while scale > 1e-6:
            trial = _quasi_log_likelihood(a + scale * da, b + scale * db, x, s)
            if trial >= current - 1e-12:
                break
            scale /= 2
        a, b, current = a + scale * da, b + scale * db, trial
        if abs(scale * da) + abs(scale * db) < 1e-10:
            break
    return a, b


def _newton_step(a: float, b: float, x: Sequence[float], s: Sequence[float]) -> tuple[float, float] | None:
    sw = swx = swxx = g0 = g1 = 0.0
    for xi, si in zip(x, s, strict=True):
        p = _sigmoid(a + b * xi)
        w = p * (1.0 - p)
        r = si - p
        sw += w
        swx += w * xi
        swxx += w * xi * xi
        g0 += r
        g1 += r * xi
    return _solve(sw, swx, swxx, g0, g1)


def _solve(sw: float, swx: float, swxx: float, g0: float, g1: float) -> tuple[float, float] | None:
    det = sw * swxx - swx * swx
    if det <= 1e-12 * max(sw * swxx, 1e-300):
        # No spread in x (or all weight at one point): the intercept alone carries the fit.
        return (g0 / sw, 0.0) if sw > 0 else None
    return (swxx * g0 - swx * g1) / det, (sw * g1 - swx * g0) / det


def length_controlled(
    chars_baseline: Sequence[int],
    chars_candidate: Sequence[int],
    scores: Sequence[float],
    *,
    level: float = 0.05,
    resamples: int = 300,
    seed: int = 0,
) -> LengthControlled:
    """The length-controlled estimate of the mean score and its one-sided bootstrap lower bound at `level`.

    Needs 0 < level < 1 and resamples >= 2.

    The three sequences are aligned, one entry per pair (controls and pairs without lengths left out).
    """
    n = len(scores)
    if not 0.0 < level < 1.0 or resamples < 2:
        raise ValueError(f"length_controlled needs 0 < level < 1 and resamples >= 2, got {level} and {resamples}")
    if n == 0 or len(chars_baseline) != n or len(chars_candidate) != n:
        raise ValueError("length_controlled needs one baseline length, candidate length and score per pair")
    diffs = [c - b for b, c in zip(chars_baseline, chars_candidate, strict=True)]
    spread = statistics.pstdev(diffs)
    x = [math.tanh(d / spread) for d in diffs] if spread > 0 else [0.0] * n
    a, b = fit_logistic(x, scores)
    estimate = _sigmoid(a)

    # Per-pair terms of one Newton step at the full-data fit; a resample only sums them.
    w, wx, wxx, r, rx = [], [], [], [], []
    for xi, si in zip(x, scores, strict=True):
        p = _sigmoid(a + b * xi)
        weight = p * (1.0 - p)
        w.append(weight)
        wx.append(weight * xi)
        wxx.append(weight * xi * xi)
        r.append(si - p)
        rx.append((si - p) * xi)
    rng = random.Random(seed)
    population = range(n)
    intercepts: list[float] = []
    for _ in range(resamples):
        idx = rng.choices(population, k=n)
        step = _solve(
            sum(map(w.__getitem__, idx)),
            sum(map(wx.__getitem__, idx)),
            sum(map(wxx.__getitem__, idx)),
            sum(map(r.__getitem__, idx)),
            sum(map(rx.__getitem__, idx)),
        )
        intercepts.append(a + (step[0] if step else 0.0))
    spread_a = statistics.stdev(intercepts) if len(intercepts) > 1 else 0.0
    lower = _sigmoid(a - statistics.NormalDist().inv_cdf(1.0 - level) * spread_a)
    return LengthControlled(estimate=estimate, lower=lower, slope=b, pairs=n)

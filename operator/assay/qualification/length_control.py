"""The length-controlled estimate: what the candidate would score if both answers were equally long.

The model is AlpacaEval 2.0's length-controlled GLM (alpaca_eval.metrics.glm_winrate, formula
"tanh(std_delta_len) + instruction_difficulty"), fitted to the pairs of one run:

    logit P(candidate preferred on item i) = a + b * tanh(d_i / sd(d)) + g * z_i

with d_i the candidate's length minus the baseline's and z_i the item's difficulty. AlpacaEval estimates an
instruction's difficulty from how 50+ models fared on it; a run has one comparison per item, so z_i here is
the standardized log length of the baseline's answer: how much the reference model had to write is what
tracks how hard and open-ended an item is, and leaving it out lets the length slope soak up difficulty
(long answers go with hard items). The length-controlled estimate is the model's prediction at equal
length averaged over the items, mean_i sigmoid(a + g z_i), as AlpacaEval reports it.

The fit is a quasi-binomial one (the target is the fractional score s in [0, 1]) by Newton's method with
step halving, with a ridge penalty `ridge` * (b^2 + g^2) / 2 on the two slopes (the intercept is free):
AlpacaEval regularizes its slopes too (L1 with cross-validation, and towards its baseline's "gamed"
verbose/concise variants); a fixed ridge keeps the fit defined on a handful of pairs or one-sided lengths and
stops a short run's slope from swinging, while it fades as pairs accumulate (at 100 pairs it moves the slope
by under 10%). The lower bound is a normal bound on the logit scale from the sandwich (robust) variance,
deterministic and cheap: pure Python, no resampling.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

_MAX_ITERATIONS = 50
DEFAULT_RIDGE = 0.25

Matrix = list[list[float]]


@dataclasses.dataclass(frozen=True, slots=True)
class LengthControlled:
    """The estimate at equal length and its lower and upper bounds; the length effect (the mean score minus the
    estimate at equal length, both from the model) and its upper bound; the fitted length slope and difficulty
    coefficient. Bounds are one-sided at the level asked for (each of `lower` and `upper` at that level)."""

    estimate: float
    lower: float
    slope: float
    pairs: int
    difficulty: float = 0.0
    effect: float = 0.0
    effect_upper: float = 0.0
    upper: float = 1.0


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _solve(matrix: Matrix, vector: list[float]) -> list[float] | None:
    """Solve a small symmetric system by Gaussian elimination with partial pivoting; None if singular."""
    size = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(size)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < 1e-12:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, size):
            factor = rows[r][col] / rows[col][col]
            for c in range(col, size + 1):
                rows[r][c] -= factor * rows[col][c]
    out = [0.0] * size
    for r in reversed(range(size)):
        out[r] = (rows[r][size] - sum(rows[r][c] * out[c] for c in range(r + 1, size))) / rows[r][r]
    return out


def _objective(
    theta: list[float], design: Sequence[tuple[float, ...]], s: Sequence[float], penalty: list[float]
) -> float:
    total = 0.0
    log = math.log
    for u, si in zip(design, s, strict=True):
        eta = sum(t * x for t, x in zip(theta, u, strict=False))
        # log sigmoid(eta) and log(1 - sigmoid(eta)), stable for any eta.
        soft = max(eta, 0.0) + log(1.0 + math.exp(-abs(eta)))
        total += si * (eta - soft) - (1.0 - si) * soft
    return total - 0.5 * sum(k * t * t for k, t in zip(penalty, theta, strict=True))


def _gradient_hessian(
    theta: list[float], design: Sequence[tuple[float, ...]], s: Sequence[float], penalty: list[float]
) -> tuple[list[float], Matrix]:
    size = len(theta)
    gradient = [-k * t for k, t in zip(penalty, theta, strict=True)]
    hessian = [[(penalty[i] if i == j else 0.0) for j in range(size)] for i in range(size)]
    pairs = [(i, j) for i in range(size) for j in range(i, size)]
    sums = [0.0] * len(pairs)
    for u, si in zip(design, s, strict=True):
        p = _sigmoid(sum(t * x for t, x in zip(theta, u, strict=False)))
        w, r = p * (1.0 - p), si - p
        for i in range(size):
            gradient[i] += r * u[i]
        for k, (i, j) in enumerate(pairs):
            sums[k] += w * u[i] * u[j]
    for k, (i, j) in enumerate(pairs):
        hessian[i][j] += sums[k]
        if i != j:
            hessian[j][i] += sums[k]
    return gradient, hessian


def fit_logistic(
    design: Sequence[tuple[float, ...]], s: Sequence[float], *, penalty: Sequence[float] | None = None
) -> list[float]:
    """Coefficients of the penalized quasi-binomial logistic fit of s in [0, 1] on the design rows.

    The first column is the intercept; `penalty` is the ridge weight per coefficient (0 for the intercept by
    default, `DEFAULT_RIDGE` for the others). A mean score of exactly 0 or 1 has no finite fit: the intercept
    is then clipped at +-30 and the slopes are 0.
    """
    size = len(design[0])
    weights = [0.0] + [DEFAULT_RIDGE] * (size - 1) if penalty is None else list(penalty)
    mean = sum(s) / len(s)
    if mean <= 0.0 or mean >= 1.0:
        return [-30.0 if mean <= 0.0 else 30.0] + [0.0] * (size - 1)
    theta = [math.log(mean / (1.0 - mean))] + [0.0] * (size - 1)
    current = _objective(theta, design, s, weights)
    for _ in range(_MAX_ITERATIONS):
        gradient, hessian = _gradient_hessian(theta, design, s, weights)
        step = _solve(hessian, gradient)
        if step is None:
            break
        scale = 1.0
        trial_theta = theta
        trial = current
        while scale > 1e-6:
            trial_theta = [t + scale * d for t, d in zip(theta, step, strict=True)]
            trial = _objective(trial_theta, design, s, weights)
            if trial >= current - 1e-12:
                break
            scale /= 2
        theta, current = trial_theta, trial
        if sum(abs(scale * d) for d in step) < 1e-10:
            break
    return theta


def _standardized(values: Sequence[float]) -> list[float]:
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values)
    return [(v - mean) / spread for v in values] if spread > 0 else [0.0] * len(values)


def length_controlled(
    chars_baseline: Sequence[int],
    chars_candidate: Sequence[int],
    scores: Sequence[float],
    *,
    level: float = 0.05,
    ridge: float = DEFAULT_RIDGE,
    difficulty: bool = True,
) -> LengthControlled:
    """The length-controlled estimate of the mean score and its one-sided lower and upper bounds at `level`.

    The three sequences are aligned, one entry per pair (controls and pairs without lengths left out).
    `difficulty=False` drops the difficulty term (the minimal intercept + length model).
    """
    n = len(scores)
    if not 0.0 < level < 1.0:
        raise ValueError(f"length_controlled needs 0 < level < 1, got {level}")
    if n == 0 or len(chars_baseline) != n or len(chars_candidate) != n:
        raise ValueError("length_controlled needs one baseline length, candidate length and score per pair")
    diffs = [c - b for b, c in zip(chars_baseline, chars_candidate, strict=True)]
    spread = statistics.pstdev(diffs)
    x = [math.tanh(d / spread) for d in diffs] if spread > 0 else [0.0] * n
    z = _standardized([math.log(max(b, 1)) for b in chars_baseline]) if difficulty else [0.0] * n
    design = [(1.0, xi, zi) for xi, zi in zip(x, z, strict=True)]
    penalty = [0.0, ridge, ridge]
    theta = fit_logistic(design, scores, penalty=penalty)
    a, b, g = theta

    # Sandwich variance of theta: H^-1 (sum r^2 u u^T) H^-1, H the penalized information.
    _, hessian = _gradient_hessian(theta, design, scores, penalty)
    meat = [[0.0] * 3 for _ in range(3)]
    for u, si in zip(design, scores, strict=True):
        r = si - _sigmoid(a + b * u[1] + g * u[2])
        for i in range(3):
            for j in range(3):
                meat[i][j] += r * r * u[i] * u[j]
    at_equal = [_sigmoid(a + g * zi) for zi in z]
    fitted = [_sigmoid(a + b * u[1] + g * u[2]) for u in design]
    estimate = statistics.fmean(at_equal)
    quantile = statistics.NormalDist().inv_cdf(1.0 - level)
    # The length effect: mean_i [sigmoid(a + b x_i + g z_i) - sigmoid(a + g z_i)], by the delta method.
    slope_fit = [p * (1 - p) for p in fitted]
    slope_equal = [p * (1 - p) for p in at_equal]
    effect = statistics.fmean(fitted) - estimate
    effect_grad = [
        statistics.fmean(f - e for f, e in zip(slope_fit, slope_equal, strict=True)),
        statistics.fmean(f * u[1] for f, u in zip(slope_fit, design, strict=True)),
        statistics.fmean((f - e) * u[2] for f, e, u in zip(slope_fit, slope_equal, design, strict=True)),
    ]
    effect_direction = _solve(hessian, effect_grad)
    effect_upper = math.inf
    if effect_direction is not None:
        effect_variance = sum(
            effect_direction[i] * meat[i][j] * effect_direction[j] for i in range(3) for j in range(3)
        )
        effect_upper = effect + quantile * math.sqrt(max(effect_variance, 0.0))
    # d estimate / d theta: the length term is zeroed, so the slope b does not enter the prediction.
    grad = [statistics.fmean(slope_equal), 0.0, statistics.fmean(w * zi for w, zi in zip(slope_equal, z, strict=True))]
    direction = _solve(hessian, grad)
    if direction is None or not 0.0 < estimate < 1.0:
        return LengthControlled(estimate, 0.0, b, n, g, effect, effect_upper, 1.0)
    variance = sum(direction[i] * meat[i][j] * direction[j] for i in range(3) for j in range(3))
    logit_se = math.sqrt(max(variance, 0.0)) / (estimate * (1.0 - estimate))
    logit = math.log(estimate / (1.0 - estimate))
    lower = _sigmoid(logit - quantile * logit_se)
    upper = _sigmoid(logit + quantile * logit_se)
    return LengthControlled(estimate, lower, b, n, g, effect, effect_upper, upper)

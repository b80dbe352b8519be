"""An anytime-valid test and confidence sequence for the mean of scores in [0, 1], by betting.

Waudby-Smith and Ramdas (2023), "Estimating means of bounded random variables by betting" (JRSS B): for a
candidate mean m, a gambler who starts with wealth 1 and bets a predictable amount lambda_i >= 0 on each
score s_i exceeding m holds K_t(m) = prod_i (1 + lambda_i (s_i - m)). If the true mean is m, K_t(m) is a
nonnegative martingale, so by Ville's inequality P(exists t: K_t(m) >= 1/alpha) <= alpha: a crossing is a
level-alpha rejection that stays valid however often the wealth is looked at, and the set of m not yet
rejected is a confidence sequence.

The bets here:
- are fractions c of the largest bet that keeps every factor positive, lambda = c / m (the paper's clip), so a
  bet can exceed 1 where the mean tested is small; the factor is (1 - c) + c s / m, positive for every s;
- are "diversified": the wealth is an average of the wealth processes of a small grid of fractions (an
  average of test martingales is a test martingale), which grows almost as fast as the best fraction of the
  grid without having to learn it;
- are scaled, before each score, by how dispersed the scores so far were: g_t = V / v_(t-1), with v the mean
  of (s - 1/2)^2 (shrunk towards V = 0.175, the dispersion of a judge that ties 30% of the time) and g_t
  rounded to a power of 2^(1/4) in [1/2, 8]. Evidence where most pairs agree (scores at 0.5) has little
  dispersion and gets proportionally larger bets, as Kelly betting would. g_t depends only on earlier scores
  and not on m, so every wealth stays a test martingale, is still monotone in m (a confidence interval), and
  is a function of how often each (scale, score) combination occurred: a bound at any time costs a few
  logarithms per combination instead of a pass over the history.

Two one-sided sequences are kept: the lower bound (bets on scores above m, level `alpha`) and the upper bound
(bets on scores below m, the lower bound of 1 - s, level `upper_alpha`). The reported bounds are running
intersections over every time 1..n, computed exactly as each score arrives (the wealth at the current bound
is carried along, and the bound moves only when that wealth reaches the threshold): a function of the
scores and their order alone, whatever was read in between.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

# Fractions of the largest safe bet at the reference dispersion, and their weights in the mixture: most
# weight near the Kelly bet for an equal candidate with 30% ties (docs/benchmarks.md has the tuning).
DEFAULT_BETS: tuple[float, ...] = (0.09, 0.13, 0.2, 0.33, 0.55)
DEFAULT_WEIGHTS: tuple[float, ...] = (2.0, 2.0, 1.0, 1.0, 1.0)
# Scaled fractions never exceed this, so a factor never falls below 1 - MAX_FRACTION.
MAX_FRACTION = 0.95
REFERENCE_DISPERSION = 0.175
# Pseudo-observations of the reference dispersion behind the scale (its prior weight).
PRIOR_SCORES = 10
SCALE_STEP = 0.25  # log2 of the ratio between neighbouring scales
SCALE_LEVELS = (-4, 12)  # scales 2^(-1) .. 2^3

# Bounds are located to this precision, always on the conservative (wider) side.
_TOLERANCE = 1e-7


def log_mean_exp(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """log(sum_j w_j exp(v_j)) (w_j = 1/J by default) without overflow: the log of an average of wealths."""
    top = max(values)
    if weights is None:
        return top + math.log(sum(math.exp(v - top) for v in values) / len(values))
    return top + math.log(sum(w * math.exp(v - top) for v, w in zip(values, weights, strict=True)))


def scale_level(dispersion_sum: float, n: int) -> int:
    """The bet scale level k (scale 2^(k/4)) after n scores whose squared distances from 1/2 sum to this."""
    estimate = (REFERENCE_DISPERSION * PRIOR_SCORES + dispersion_sum) / (PRIOR_SCORES + n)
    k = round(math.log2(REFERENCE_DISPERSION / max(estimate, 1e-12)) / SCALE_STEP)
    return min(max(k, SCALE_LEVELS[0]), SCALE_LEVELS[1])


@functools.lru_cache(maxsize=1024)
def fractions(bets: tuple[float, ...], level: int) -> tuple[float, ...]:
    """The bet fractions at scale level `level`."""
    scale = 2.0 ** (level * SCALE_STEP)
    return tuple(min(MAX_FRACTION, bet * scale) for bet in bets)


def _log_wealth_and_slope(
    counts: Mapping[tuple[int, float], int], bets: tuple[float, ...], weights: Sequence[float] | None, m: float
) -> tuple[float, float]:
    """log of the mixture wealth betting on y above m (from counts of (scale level, y)), and its m-derivative."""
    logs = [0.0] * len(bets)
    slopes = [0.0] * len(bets)
    log = math.log
    for (level, y), count in counts.items():
        ratio = y / m
        for j, c in enumerate(fractions(bets, level)):
            factor = 1.0 - c + c * ratio
            logs[j] += count * log(factor)
            slopes[j] -= count * c * ratio / (m * factor)
    top = max(logs)
    share = [1.0 / len(bets)] * len(bets) if weights is None else list(weights)
    parts = [w * math.exp(v - top) for v, w in zip(logs, share, strict=True)]
    total = sum(parts)
    return top + math.log(total), sum(p * d for p, d in zip(parts, slopes, strict=True)) / total


def _log_wealths(counts: Mapping[tuple[int, float], int], bets: tuple[float, ...], m: float) -> list[float]:
    logs = [0.0] * len(bets)
    for (level, y), count in counts.items():
        for j, c in enumerate(fractions(bets, level)):
            logs[j] += count * math.log(1.0 - c + c * y / m)
    return logs


def lower_bound(
    counts: Mapping[tuple[int, float], int],
    *,
    alpha: float,
    bets: tuple[float, ...] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
    above: float = 0.0,
) -> float:
    """The largest m whose wealth (betting on y above m) reached 1/alpha, 0 when none did.

    `counts` maps (scale level, y) to how often y was bet on at that scale. The result is never larger than
    the exact bound and within 1e-7 of it; `above` is a point known to be rejected (a previous bound), which
    only speeds the search.
    """
    log_threshold = math.log(1.0 / alpha)
    if weights is not None:
        weights = [w / sum(weights) for w in weights]
    if not any(y > 0.0 for _, y in counts):
        return 0.0

    def excess(m: float) -> tuple[float, float]:
        value, slope = _log_wealth_and_slope(counts, bets, weights, m)
        return value - log_threshold, slope

    # Every m near 0 is rejected (some y > 0 makes the wealth unbounded there); m = 1 never is.
    low, high = (above if above > 0.0 and excess(above)[0] >= 0.0 else _TOLERANCE / 2), 1.0
    if excess(low)[0] < 0.0:
        return 0.0
    t = low
    for _ in range(200):
        value, slope = excess(t)
        if value >= 0.0:
            low = t
        else:
            high = t
        if high - low <= _TOLERANCE:
            break
        newton = t - value / slope if slope < 0.0 else math.nan
        if abs(newton - t) < _TOLERANCE / 2:
            probe = newton - _TOLERANCE / 2
            if probe > low and excess(probe)[0] >= 0.0:
                low = probe
            break
        t = newton if low < newton < high else (low + high) / 2
    return low


class LowerSequence:
    """The running-intersection lower confidence sequence for the mean of y in [0, 1], and a test of mean <= m.

    `update(y, level)` adds one observation bet on at scale `level`. `bound` is max over times 1..n of the
    level-alpha lower bound at that time, computed exactly as observations arrive; `crossed_at` is the first n
    at which the wealth against `m` reached 1/alpha, `max_log_wealth` the largest log wealth against m so far.
    """

    def __init__(
        self,
        m: float,
        alpha: float,
        *,
        bets: Sequence[float] = DEFAULT_BETS,
        weights: Sequence[float] | None = DEFAULT_WEIGHTS,
        bounds: bool = True,
    ) -> None:
        self.m = m
        self.tracks_bound = bounds
        self.alpha = alpha
        self.bets = tuple(bets)
        self.weights = None if weights is None else tuple(w / sum(weights) for w in weights)
        self.n = 0
        self.counts: dict[tuple[int, float], int] = {}
        self.bound = 0.0
        self.crossed_at: int | None = None
        self.max_log_wealth = 0.0
        self._log_threshold = math.log(1.0 / alpha)
        self._at_m = [0.0] * len(self.bets)
        self._at_bound = [0.0] * len(self.bets)

    def update(self, y: float, level: int = 0) -> None:
        self.n += 1
        key = (level, y)
        self.counts[key] = self.counts.get(key, 0) + 1
        cs = fractions(self.bets, level)
        self._at_m = [w + math.log(1.0 - c + c * y / self.m) for w, c in zip(self._at_m, cs, strict=True)]
        log_wealth = self.log_wealth
        if log_wealth > self.max_log_wealth:
            self.max_log_wealth = log_wealth
            if self.crossed_at is None and log_wealth >= self._log_threshold:
                self.crossed_at = self.n
        if not self.tracks_bound:
            return
        if self.bound > 0.0:
            self._at_bound = [
                w + math.log(1.0 - c + c * y / self.bound) for w, c in zip(self._at_bound, cs, strict=True)
            ]
            if log_mean_exp(self._at_bound, self.weights) < self._log_threshold:
                return
        elif y <= 0.0:
            return
        bound = lower_bound(self.counts, alpha=self.alpha, bets=self.bets, weights=self.weights, above=self.bound)
        if bound > self.bound:
            self.bound = bound
            self._at_bound = self._log_wealths_at(bound)

    def _log_wealths_at(self, m: float) -> list[float]:
        return _log_wealths(self.counts, self.bets, m)

    @property
    def log_wealth(self) -> float:
        """log of the current mixture wealth against m."""
        return log_mean_exp(self._at_m, self.weights)


class BettingTest:
    """Incremental betting test of H0: mean <= m0, with its confidence sequence.

    After each `update(s)`:
    - `wealth` is the mixture wealth against m0 (bets on scores above m0) and `crossed_at` the first n at
      which it reached 1/alpha: from then on H0 is rejected at level alpha, whatever comes after (Ville).
    - `p_value` = min(1, 1 / max_t wealth_t) is an anytime-valid p-value for H0.
    - `lower` / `upper` are the running-intersection confidence bounds at levels alpha / upper_alpha over
      every time so far: functions of the scores alone, however often they are read.
    - `failed_at` is the first n at which the upper bound fell below `fail_at` (default m0), or, with
      `futility_at`, the level-`futility_alpha` upper bound fell below futility_at; `futile` says which.
    With bounds=False only the two tests are kept (crossed_at, failed_at, wealth): lower stays 0, upper 1.
    """

    def __init__(
        self,
        m0: float,
        alpha: float,
        *,
        upper_alpha: float | None = None,
        fail_at: float | None = None,
        futility_at: float | None = None,
        futility_alpha: float | None = None,
        bets: Sequence[float] = DEFAULT_BETS,
        weights: Sequence[float] | None = DEFAULT_WEIGHTS,
        bounds: bool = True,
    ) -> None:
        if not 0.0 < m0 < 1.0:
            raise ValueError(f"m0 must be in (0, 1), got {m0}")
        for name, level in (("alpha", alpha), ("upper_alpha", upper_alpha)):
            if level is not None and not 0.0 < level < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {level}")
        if not bets or any(not 0.0 < bet < 1.0 for bet in bets):
            raise ValueError(f"bets must be a non-empty list of fractions in (0, 1), got {list(bets)}")
        if weights is not None and (len(weights) != len(bets) or any(w <= 0 for w in weights)):
            raise ValueError(f"weights must be one positive number per bet, got {list(weights)}")
        self.m0 = m0
        self.alpha = alpha
        self.upper_alpha = alpha if upper_alpha is None else upper_alpha
        self.fail_at = m0 if fail_at is None else fail_at
        if not 0.0 < self.fail_at < 1.0:
            raise ValueError(f"fail_at must be in (0, 1), got {self.fail_at}")
        self.bets = tuple(bets)
        self.n = 0
        self.total = 0.0
        self.counts: dict[float, int] = {}
        self.failed_at: int | None = None
        self._dispersion = 0.0
        self._up = LowerSequence(m0, alpha, bets=bets, weights=weights, bounds=bounds)
        self._down = LowerSequence(1.0 - self.fail_at, self.upper_alpha, bets=bets, weights=weights, bounds=bounds)
        self.futile = False
        self._futility: LowerSequence | None = None
        if futility_at is not None:
            if not 0.0 < futility_at < 1.0 or futility_alpha is None or not 0.0 < futility_alpha < 1.0:
                raise ValueError(f"futility needs futility_at and futility_alpha in (0, 1), got {futility_at}")
            self._futility = LowerSequence(1.0 - futility_at, futility_alpha, bets=bets, weights=weights, bounds=False)

    def update(self, s: float) -> None:
        """Add one score in [0, 1]."""
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"a score must be in [0, 1], got {s}")
        level = scale_level(self._dispersion, self.n)
        self.n += 1
        self.total += s
        self.counts[s] = self.counts.get(s, 0) + 1
        self._dispersion += (s - 0.5) ** 2
        self._up.update(s, level)
        self._down.update(1.0 - s, level)
        if self._futility is not None:
            self._futility.update(1.0 - s, level)
        if self.failed_at is None and self._down.crossed_at is not None:
            self.failed_at = self.n
        elif self.failed_at is None and self._futility is not None and self._futility.crossed_at is not None:
            self.failed_at, self.futile = self.n, True

    @property
    def crossed_at(self) -> int | None:
        """The first n at which the wealth against m0 reached 1/alpha."""
        return self._up.crossed_at

    @property
    def estimate(self) -> float | None:
        """The sample mean, None before the first score."""
        return self.total / self.n if self.n else None

    @property
    def log_wealth(self) -> float:
        """log of the current mixture wealth against m0."""
        return self._up.log_wealth

    @property
    def wealth(self) -> float:
        """The current mixture wealth against m0 (capped at the largest float instead of overflowing)."""
        return math.exp(min(self.log_wealth, 709.0))

    @property
    def max_wealth(self) -> float:
        """The largest wealth so far (1 at the start)."""
        return math.exp(min(self._up.max_log_wealth, 709.0))

    @property
    def p_value(self) -> float:
        """Anytime-valid p-value for H0: mean <= m0, min(1, 1 / max_t wealth_t)."""
        return min(1.0, math.exp(-self._up.max_log_wealth))

    @property
    def lower(self) -> float:
        """Running-intersection lower confidence bound at level alpha over every time so far."""
        return self._up.bound

    @property
    def upper(self) -> float:
        """Running-intersection upper confidence bound at level upper_alpha over every time so far."""
        return 1.0 - self._down.bound


class RateBounds:
    """Anytime-valid confidence bounds for a rate (a mean of 0/1 outcomes), both one-sided at level alpha.

    The guardrails use them: a rate is known to be at least x once `lower` >= x and at most x once `upper`
    <= x, with error probability alpha each, however often it is looked at.
    """

    BETS: tuple[float, ...] = (0.15, 0.35, 0.6, 0.85)

    def __init__(self, alpha: float) -> None:
        self.n = 0
        self.hits = 0
        self._up = LowerSequence(0.5, alpha, bets=self.BETS, weights=None)
        self._down = LowerSequence(0.5, alpha, bets=self.BETS, weights=None)

    def update(self, hit: bool) -> None:
        self.n += 1
        self.hits += hit
        self._up.update(1.0 if hit else 0.0)
        self._down.update(0.0 if hit else 1.0)

    @property
    def rate(self) -> float | None:
        return self.hits / self.n if self.n else None

    @property
    def lower(self) -> float:
        return self._up.bound

    @property
    def upper(self) -> float:
        return 1.0 - self._down.bound

"""An anytime-valid test and confidence sequence for the mean of scores in [0, 1], by betting.

Waudby-Smith and Ramdas (2023), "Estimating means of bounded random variables by betting" (JRSS B): for a
candidate mean m, a gambler who starts with wealth 1 and bets a predictable fraction lambda_i >= 0 on each
score s_i exceeding m holds K_t(m) = prod_i (1 + lambda_i (s_i - m)). If the true mean is m, K_t(m) is a
nonnegative martingale, so by Ville's inequality P(exists t: K_t(m) >= 1/alpha) <= alpha: a crossing is a
level-alpha rejection that stays valid however often the wealth is looked at, and the set of m not yet
rejected is a confidence sequence.

The bets here are "diversified": the wealth is the average of the wealth processes of a small grid of
constant bets (the default grid is tuned in docs/benchmarks.md). An average of test martingales is a test
martingale, so validity is untouched, and the average grows almost as fast as the best bet in the grid
without having to learn it. Constant bets below 1 also keep every factor positive for every m in [0, 1]
(the clip c/m of the paper is then never needed) and make K_t(m) a function of how often each score value
occurred, so a bound at any time costs a few logarithms per distinct score value instead of a pass over the
history.

Two one-sided sequences are kept: the lower bound (bets on scores above m, level `alpha`) and the upper
bound (bets on scores below m, level `upper_alpha`). Reported bounds are running intersections over the
times they were evaluated; an intersection of a confidence sequence over any set of times is again one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

DEFAULT_BETS: tuple[float, ...] = (0.15, 0.3, 0.5, 0.8)

# Bounds are located to this precision, always on the conservative (wider) side.
_TOLERANCE = 1e-7
# Distinct score values whose log factors are cached (scores here take five values).
_CACHE_LIMIT = 64


def log_mean_exp(values: Sequence[float]) -> float:
    """log(mean(exp(v))) without overflow: the log of an average of wealths given their logs."""
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _log_wealth_and_slope(
    counts: Mapping[float, int], bets: Sequence[float], m: float, direction: float
) -> tuple[float, float]:
    """log of the mixture wealth against mean m, and its derivative in m.

    direction +1 bets on scores above m (the wealth falls as m grows), -1 on scores below m (it rises).
    """
    logs: list[float] = []
    slopes: list[float] = []
    for bet in bets:
        signed = bet * direction
        log_wealth = slope = 0.0
        for value, count in counts.items():
            factor = 1.0 + signed * (value - m)
            log_wealth += count * math.log(factor)
            slope -= count * signed / factor
        logs.append(log_wealth)
        slopes.append(slope)
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    total = sum(weights)
    mixture = top + math.log(total / len(logs))
    return mixture, sum(w * d for w, d in zip(weights, slopes, strict=True)) / total


def confidence_bound(
    counts: Mapping[float, int],
    *,
    alpha: float,
    side: str,
    bets: Sequence[float] = DEFAULT_BETS,
    start: float | None = None,
) -> float:
    """The one-sided level-alpha betting confidence bound for the mean of scores with these counts.

    side "lower": the largest m whose upward wealth reached 1/alpha (0 when none did); side "upper": the
    smallest m whose downward wealth reached 1/alpha (1 when none did). The result is never tighter than the
    exact bound and within 1e-7 of it. `start` is a guess (e.g. the previous bound) that speeds the search.
    """
    if side not in ("lower", "upper"):
        raise ValueError(f'side must be "lower" or "upper", got {side!r}')
    direction = 1.0 if side == "lower" else -1.0
    log_threshold = math.log(1.0 / alpha)

    # Work in t = m for the lower bound and t = 1 - m for the upper one, so both searches look alike:
    # rejected t form [0, root], and the excess wealth g(t) falls as t grows.
    def excess(t: float) -> tuple[float, float]:
        m = t if side == "lower" else 1.0 - t
        value, slope = _log_wealth_and_slope(counts, bets, m, direction)
        return value - log_threshold, slope if side == "lower" else -slope

    if not counts or excess(0.0)[0] < 0.0:
        return 0.0 if side == "lower" else 1.0
    low, high = 0.0, 1.0  # excess(low) >= 0 > excess(high): the wealth at m = 1 (or 0) never grows
    t = 0.5 if start is None else min(max(start if side == "lower" else 1.0 - start, 0.0), 1.0)
    for _ in range(100):
        value, slope = excess(t)
        if value >= 0.0:
            low = t
        else:
            high = t
        if high - low <= _TOLERANCE:
            break
        newton = t - value / slope if slope < 0.0 else math.nan
        if abs(newton - t) < _TOLERANCE / 2:
            # Newton has converged, perhaps from the side that is not rejected: confirm a rejected point.
            probe = newton - _TOLERANCE / 2
            if probe > low and excess(probe)[0] >= 0.0:
                low = probe
            break
        t = newton if low < newton < high else (low + high) / 2
    return low if side == "lower" else 1.0 - low


class BettingTest:
    """Incremental betting test of H0: mean <= m0, with its confidence sequence.

    After each `update(s)`:
    - `wealth` is the mixture wealth against m0 (bets on scores above m0) and `crossed_at` the first n at
      which it reached 1/alpha: from then on H0 is rejected at level alpha, whatever comes after (Ville).
    - `p_value` = min(1, 1 / max_t wealth_t) is an anytime-valid p-value for H0.
    - `lower` / `upper` are the running-intersection confidence bounds at levels alpha / upper_alpha.
    - `failed_at` is the first n at which the upper bound fell below `fail_at` (default m0).
    """

    def __init__(
        self,
        m0: float,
        alpha: float,
        *,
        upper_alpha: float | None = None,
        fail_at: float | None = None,
        bets: Sequence[float] = DEFAULT_BETS,
    ) -> None:
        if not 0.0 < m0 < 1.0:
            raise ValueError(f"m0 must be in (0, 1), got {m0}")
        for name, level in (("alpha", alpha), ("upper_alpha", upper_alpha)):
            if level is not None and not 0.0 < level < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {level}")
        if not bets or any(not 0.0 < bet < 1.0 for bet in bets):
            raise ValueError(f"bets must be a non-empty list of fractions in (0, 1), got {list(bets)}")
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
        self.crossed_at: int | None = None
        self.failed_at: int | None = None
        self._up = [0.0] * len(self.bets)
        self._down = [0.0] * len(self.bets)
        self._log_pass = math.log(1.0 / alpha)
        self._log_fail = math.log(1.0 / self.upper_alpha)
        self._max_log_wealth = 0.0
        self._lower = 0.0
        self._upper = 1.0
        self._factors: dict[float, tuple[tuple[float, ...], tuple[float, ...]]] = {}

    def _factors_for(self, s: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        factors = self._factors.get(s)
        if factors is None:
            factors = (
                tuple(math.log1p(bet * (s - self.m0)) for bet in self.bets),
                tuple(math.log1p(bet * (self.fail_at - s)) for bet in self.bets),
            )
            if len(self._factors) < _CACHE_LIMIT:
                self._factors[s] = factors
        return factors

    def update(self, s: float) -> None:
        """Add one score in [0, 1]."""
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"a score must be in [0, 1], got {s}")
        up, down = self._factors_for(s)
        self.n += 1
        self.total += s
        self.counts[s] = self.counts.get(s, 0) + 1
        self._up = [w + f for w, f in zip(self._up, up, strict=True)]
        self._down = [w + f for w, f in zip(self._down, down, strict=True)]
        # The mixture never exceeds its largest member: most steps skip the exact average.
        if max(self._up) > self._max_log_wealth:
            log_wealth = log_mean_exp(self._up)
            if log_wealth > self._max_log_wealth:
                self._max_log_wealth = log_wealth
                if self.crossed_at is None and log_wealth >= self._log_pass:
                    self.crossed_at = self.n
                    self._fold_lower(start=self.m0)
        if self.failed_at is None and max(self._down) >= self._log_fail and log_mean_exp(self._down) >= self._log_fail:
            self.failed_at = self.n
            self._fold_upper(start=self.fail_at)

    @property
    def estimate(self) -> float | None:
        """The sample mean, None before the first score."""
        return self.total / self.n if self.n else None

    @property
    def log_wealth(self) -> float:
        """log of the current mixture wealth against m0."""
        return log_mean_exp(self._up)

    @property
    def wealth(self) -> float:
        """The current mixture wealth against m0 (capped at the largest float instead of overflowing)."""
        return math.exp(min(self.log_wealth, 709.0))

    @property
    def max_wealth(self) -> float:
        """The largest wealth so far (1 at the start)."""
        return math.exp(min(self._max_log_wealth, 709.0))

    @property
    def p_value(self) -> float:
        """Anytime-valid p-value for H0: mean <= m0, min(1, 1 / max_t wealth_t)."""
        return min(1.0, math.exp(-self._max_log_wealth))

    @property
    def lower(self) -> float:
        """Running-intersection lower confidence bound at level alpha (evaluated now and folded in)."""
        self._fold_lower(start=self._lower)
        return self._lower

    @property
    def upper(self) -> float:
        """Running-intersection upper confidence bound at level upper_alpha (evaluated now and folded in)."""
        self._fold_upper(start=self._upper)
        return self._upper

    def _fold_lower(self, *, start: float) -> None:
        bound = confidence_bound(self.counts, alpha=self.alpha, side="lower", bets=self.bets, start=start)
        self._lower = max(self._lower, bound)

    def _fold_upper(self, *, start: float) -> None:
        bound = confidence_bound(self.counts, alpha=self.upper_alpha, side="upper", bets=self.bets, start=start)
        self._upper = min(self._upper, bound)

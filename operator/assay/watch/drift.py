"""Anytime-valid drift tests on the live quality of a promoted route. Pure: no I/O, no randomness.

After a promotion, sampled live requests are replayed to the old baseline and judged blind in both orders
exactly as in qualification, giving scores X_t in [0, 1] (win 1, tie 0.5, loss 0, position-corrected); mean
0.5 is a candidate as good as the baseline. Drift is the mean falling below the drift margin m_d, which sits
`DEFAULT_DRIFT_GAP` below the qualification bar 0.5 - margin (`drift_margin`): a candidate that truly sits
at the bar it qualified against stays clear of the alarm (docs/drift.md has the simulations).

Two detectors consume the stream:
- `WatchWindow`, a fixed number of samples right after promotion: the qualification's betting test
  (`assay.qualification.sequential.BettingTest`) in the reverse direction, alarming once its upper confidence
  bound on the mean falls below m_d. By Ville's inequality a route whose mean stays >= m_d alarms with
  probability at most alpha over the whole window, however often it is read.
- `DriftDetector`, for indefinite watching: the CUSUM e-detector of Shin, Ramdas and Rinaldo (2022,
  "E-detectors: a nonparametric framework for sequential change detection", arXiv:2203.03532). For each bet
  l of a small grid, M_t(l) = max(M_(t-1)(l), 1) * (1 + l (m_d - X_t)): the wealth of the best of the gamblers
  who started betting on scores below m_d at any earlier time. The alarm is the weighted average over the
  grid reaching the threshold c. Under no drift (every mean >= m_d, whatever the stream), the mean time to a
  false alarm is at least c samples and P(alarm within N samples) <= N / c; size c with `threshold_for`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from assay.qualification import sequential

DEFAULT_DRIFT_GAP = 0.05
DEFAULT_ALPHA = 0.05
# Fractions of the largest bet that keeps every factor positive (l = f / (1 - m_d)), and their weights: the
# Kelly fraction for a drop of 0.05 below m_d with 30% ties is about 0.2, for 0.15 about 0.6.
DEFAULT_BETS: tuple[float, ...] = (0.1, 0.2, 0.35, 0.55)
DEFAULT_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)


class DriftSettingsError(ValueError):
    """A drift test setting outside its allowed range; the message names the setting and what it must be."""


def _require(name: str, value: object, ok: bool, wanted: str) -> None:
    if not ok:
        raise DriftSettingsError(f"drift setting {name} must be {wanted}, got {value!r}")


def drift_margin(qualification_margin: float = 0.05, *, gap: float = DEFAULT_DRIFT_GAP) -> float:
    """m_d = 0.5 - qualification_margin - gap: `gap` below the bar the candidate qualified against.

    The defaults give 0.40 (qualification bar 0.45).
    """
    _require("qualification_margin", qualification_margin, 0.0 <= qualification_margin < 0.5, "in [0, 0.5)")
    _require("gap", gap, 0.0 <= gap < 0.5 - qualification_margin, f"in [0, {0.5 - qualification_margin:g})")
    return 0.5 - qualification_margin - gap


def threshold_for(mean_days_between_false_alarms: float, samples_per_day: float) -> float:
    """The e-detector threshold c = mean_days_between_false_alarms * samples_per_day.

    The detector's mean run length under no drift is at least c samples, so at `samples_per_day` judged samples
    a day false alarms come at most once every `mean_days_between_false_alarms` days on average (and with
    probability at most N / c within any first N samples).
    """
    _require(
        "mean_days_between_false_alarms", mean_days_between_false_alarms, mean_days_between_false_alarms > 0, "above 0"
    )
    _require("samples_per_day", samples_per_day, samples_per_day > 0, "above 0")
    c = mean_days_between_false_alarms * samples_per_day
    _require("threshold", c, c > 1.0, "above 1 (more days between false alarms, or more samples a day)")
    return c


def samples_per_day(requests_per_day: float, sample_rate: float, *, cap: int | None = None) -> float:
    """How many live requests a day are sampled for judging: requests_per_day * sample_rate, at most `cap`."""
    _require("requests_per_day", requests_per_day, requests_per_day >= 0, "at least 0")
    _require("sample_rate", sample_rate, 0.0 < sample_rate <= 1.0, "in (0, 1]")
    _require("cap", cap, cap is None or cap >= 1, "at least 1 or None")
    sampled = requests_per_day * sample_rate
    return sampled if cap is None else min(sampled, float(cap))


class Tally:
    """Wins (score above 0.5), ties (exactly 0.5) and losses (below) of the candidate."""

    def __init__(self, wins: int = 0, ties: int = 0, losses: int = 0) -> None:
        self.wins, self.ties, self.losses = wins, ties, losses

    def add(self, score: float) -> None:
        if score > 0.5:
            self.wins += 1
        elif score < 0.5:
            self.losses += 1
        else:
            self.ties += 1


def _check_score(score: float) -> None:
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score!r}")


class WatchWindow:
    """The bounded watch window: H0 "mean >= drift_margin" tested by betting on scores below it.

    It is `sequential.BettingTest` with its failure side at `drift_margin` (the lower confidence sequence of
    1 - X at level alpha): `alarmed_at` is the first sample at which its upper confidence bound on the mean fell
    below `drift_margin`. A route whose mean stays at or above the drift margin alarms within the window with
    probability at most alpha. After `samples` scores the window is complete and takes no more (hand over to
    `DriftDetector`); after an alarm it stays alarmed. bounds=False skips the confidence bound `upper` (then
    1.0) and keeps only the test, which decides the same alarms faster.
    """

    def __init__(self, drift_margin: float, *, samples: int, alpha: float = DEFAULT_ALPHA, bounds: bool = True) -> None:
        _require("drift_margin", drift_margin, 0.0 < drift_margin < 1.0, "in (0, 1)")
        _require("samples", samples, samples >= 1, "at least 1")
        _require("alpha", alpha, 0.0 < alpha < 1.0, "in (0, 1)")
        self.drift_margin, self.samples, self.alpha = drift_margin, samples, alpha
        self.tally = Tally()
        # The pass side (crossed_at, lower) is unused: the window only asks whether the mean fell below m_d.
        self._test = sequential.BettingTest(drift_margin, alpha, fail_at=drift_margin, upper_alpha=alpha, bounds=bounds)

    def update(self, score: float) -> bool:
        """Add one score; True once the window has alarmed."""
        _check_score(score)
        if self.complete:
            raise ValueError(f"the watch window of {self.samples} samples is complete; watch on with DriftDetector")
        if not self.alarmed:
            self._test.update(score)
            self.tally.add(score)
        return self.alarmed

    @property
    def n(self) -> int:
        """Scores consumed (none after an alarm)."""
        return self._test.n

    @property
    def complete(self) -> bool:
        """The window has seen its `samples` scores without alarming."""
        return not self.alarmed and self.n >= self.samples

    @property
    def alarmed_at(self) -> int | None:
        """The sample at which the upper confidence bound fell below the drift margin, None before."""
        return self._test.failed_at

    @property
    def alarmed(self) -> bool:
        return self._test.failed_at is not None

    @property
    def upper(self) -> float:
        """The running-intersection upper confidence bound on the mean at level alpha (1.0 with bounds=False)."""
        return self._test.upper

    @property
    def estimate(self) -> float | None:
        """The mean score so far, None before the first."""
        return self._test.estimate


class DriftDetector:
    """The CUSUM e-detector for indefinite watching (module docstring), incremental and serializable.

    The bet of fraction f is l = f / (1 - drift_margin): every factor 1 + l (m_d - x) stays at least 1 - f > 0
    for any score x in [0, 1]. As in qualification, each fraction is scaled before each score by how dispersed
    the scores so far were (`sequential.fractions` at `sequential.scale_level`): a predictable bet, so every
    M_t(l) is still the running maximum of test supermartingales started at earlier times and the guarantee
    holds. State is a few floats per bet; `to_dict` / `from_dict` carry it as JSON-safe numbers.
    """

    def __init__(
        self,
        drift_margin: float,
        threshold: float,
        *,
        bets: Sequence[float] = DEFAULT_BETS,
        weights: Sequence[float] = DEFAULT_WEIGHTS,
    ) -> None:
        _require("drift_margin", drift_margin, 0.0 < drift_margin < 1.0, "in (0, 1)")
        _require("threshold", threshold, threshold > 1.0, "above 1 (see threshold_for)")
        _require("bets", list(bets), bool(bets) and all(0.0 < f < 1.0 for f in bets), "fractions in (0, 1)")
        _require(
            "weights",
            list(weights),
            len(weights) == len(bets) and all(w > 0 for w in weights),
            "one positive weight per bet",
        )
        self.drift_margin = drift_margin
        self.threshold = threshold
        self.bets = tuple(bets)
        self.weights = tuple(weights)
        self.n = 0
        self.tally = Tally()
        self.dispersion = 0.0  # sum of (x - 1/2)^2: the bet scale
        self.statistics = [1.0] * len(self.bets)  # M_t(l) per bet, M_0 = 1
        self.alarmed_at: int | None = None

    def update(self, score: float) -> bool:
        """Add one score; True once the detector has alarmed (it then stays alarmed and ignores scores)."""
        _check_score(score)
        if self.alarmed_at is not None:
            return True
        level = sequential.scale_level(self.dispersion, self.n)
        step = (self.drift_margin - score) / (1.0 - self.drift_margin)
        self.statistics = [
            max(m, 1.0) * (1.0 + f * step)
            for m, f in zip(self.statistics, sequential.fractions(self.bets, level), strict=True)
        ]
        self.n += 1
        self.dispersion += (score - 0.5) ** 2
        self.tally.add(score)
        if self.e_value >= self.threshold:
            self.alarmed_at = self.n
        return self.alarmed_at is not None

    @property
    def e_value(self) -> float:
        """The weighted average of M_t(l) over the bets (1 before the first score)."""
        return sum(w * m for w, m in zip(self.weights, self.statistics, strict=True)) / sum(self.weights)

    @property
    def alarmed(self) -> bool:
        return self.alarmed_at is not None

    def to_dict(self) -> dict[str, Any]:
        """The whole state as JSON-safe numbers (camelCase keys, as in Kubernetes status)."""
        return {
            "driftMargin": self.drift_margin,
            "threshold": self.threshold,
            "bets": list(self.bets),
            "weights": list(self.weights),
            "samples": self.n,
            "wins": self.tally.wins,
            "ties": self.tally.ties,
            "losses": self.tally.losses,
            "dispersion": self.dispersion,
            "statistics": list(self.statistics),
            "eValue": self.e_value,
            "alarmed": self.alarmed,
            "alarmedAt": self.alarmed_at,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> DriftDetector:
        """The detector `to_dict` described; raises DriftSettingsError naming a missing or invalid field."""
        missing = [key for key in ("driftMargin", "threshold", "bets", "weights") if key not in state]
        _require("state", dict(state), not missing, f"a dict with {', '.join(missing)}")
        detector = cls(
            float(state["driftMargin"]),
            float(state["threshold"]),
            bets=[float(f) for f in state["bets"]],
            weights=[float(w) for w in state["weights"]],
        )
        statistics = [float(m) for m in state.get("statistics", detector.statistics)]
        _require(
            "statistics",
            statistics,
            len(statistics) == len(detector.bets) and all(m > 0 and math.isfinite(m) for m in statistics),
            "one positive number per bet",
        )
        detector.statistics = statistics
        detector.n = int(state.get("samples", 0))
        detector.tally = Tally(int(state.get("wins", 0)), int(state.get("ties", 0)), int(state.get("losses", 0)))
        detector.dispersion = float(state.get("dispersion", 0.0))
        alarmed_at = state.get("alarmedAt")
        detector.alarmed_at = None if alarmed_at is None else int(alarmed_at)
        return detector

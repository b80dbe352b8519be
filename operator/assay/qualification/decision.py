"""The qualification decision: Passed, Failed or Inconclusive, from evidence consumed in evaluation order.

The question is non-inferiority of the candidate: H0 mu <= m0 = 0.5 - margin. Records are consumed one at
a time, in the pre-registered order; every statistic is updated record by record from the evidence alone, so
the same records give the same decision, bounds and guardrail outcomes however they were chunked or how
often they were read (`Qualification.extend` feeds a batch; reading `stats()` changes nothing). The decision
is taken at the first record that settles it. What settles it, in the order it is checked:

1. Statistical pass (`BettingTest.crossed_at`): the mixture betting wealth against m0 of the tested scores
   reaches K/alpha (K candidates on the same pool); by Ville's inequality this is final. The tested score is
   the pair's score corrected for position: s - margin * d, where d in [-1, 1] is how much the answer shown
   first was favoured over the two orders (0 for a pair whose orders agree). A judge that names the answer
   shown first with probability p turns mu into mu + p (0.5 - mu), which would promote a candidate at the
   margin; the corrected score has mean (1 - p) mu + p m0 instead, so it cannot cross m0 from below, however
   strong the bias (docs/evidence.md). A pass is not declared before `min_samples` non-control pairs.
2. Statistical fail, checked only while no pass has been reached: the anytime-valid upper bound falls below
   m0 at level alpha (reason BelowMargin) or, with `futility` on (the default), an upper bound at level
   futility_alpha_share * alpha falls below 0.5 (reason WorseThanBaseline). Futility only stops runs, so it
   cannot promote; it fails an equal candidate with probability at most futility_alpha_share * alpha (1% by
   default, which is what keeps the power for an equal candidate at 95%).
3. Guardrails, once the statistical pass is settled. Each is a sequential test of its own, resolved from the
   evidence at the record where its bound settles, never re-read; records keep being consumed while one
   waits. The first violated guardrail fails the run with its reason, else it passes:
   - JudgeInsensitive / SwapInconsistent: the control catch rate (a control is caught when s < 0.5) and the
     swap consistency (share of judged, non-agreed, non-control pairs whose orders named the same winner; an
     invalid verdict is inconsistent) each carry anytime-valid bounds at level guardrail_alpha_share * alpha.
     A guardrail is violated once its upper bound falls below its limit (so a judge at the limit is failed
     with at most that probability, not by the noise of ten items) and holds once it has its minimum
     evidence and its lower bound clears `judge_floor` (better than chance). Both are waived when the
     verdict does not need the judge: when the test also passes with every judged pair scored 0 (answers
     that agree score 0.5 without a judge), so evidence where all answers agree can pass.
   - FormatRegression: the candidate's format pass rate is below the baseline's by more than
     `format_tolerance` at the record that settles the run (still a point estimate; the report adds a lower
     confidence bound of the drop at level alpha).
   - PromptIndependent: the candidate repeats itself across different prompts where the baseline does not
     (near-duplicate answer fingerprints, `assay.qualification.fingerprint`): the lower bound of that share
     exceeds `repeat_share_max`. A constant answer that fools the judge is stopped here.
   - LengthBiased: whenever pairs carry lengths, at any length ratio (no ratio trigger), the
     length-controlled estimate (AlpacaEval's GLM with an item-difficulty term and ridge-regularized slopes,
     `length_control`) must have its lower bound above m0. It is fitted when 50, 100, 200, 300, 400, 500,
     600, 800 and 1000 pairs with lengths are available (`length_looks`: multiples 1, 2, 4, 6, ..., 12, 16, 20 of
     `length_first_look`, below max_samples) and once more when the evidence ends, at levels that share
     length_alpha_share * alpha / K by weighted Bonferroni (weight min(k, 6) / 6 for the look at k times the
     first, 1 for the last look: the early looks only a clearly better candidate clears take little alpha). Under
     a length bias the raw test passes for sure and this check alone stands between the candidate and a
     promotion (an intersection-union test: each of the two tests is valid on its own, so requiring both
     keeps alpha); it spends only part of alpha/K because the logistic model is an approximation, and a
     length bias of another shape leaves the fit a small residual bias, which the rest absorbs. The
     guardrail holds from the first look that clears. At the last look a bound that still does not clear
     is violated (LengthBiased) only when the upper bound at the same level is below m0 too (evidence that
     the quality at equal length is below the margin); a bound that straddles m0 leaves the run Inconclusive
     (LengthUnresolved): an equal candidate is not accused of being preferred for length for want of pairs.
   The length, format and repeat guardrails are not applicable when no pair carries lengths, format checks or
   fingerprints.
4. End of evidence (`finish`) or `max_samples` non-control pairs, undecided: Inconclusive, with the reason
   InsufficientControls / InsufficientJudgedPairs (statistically passed, a judge guardrail unresolved),
   InsufficientSamples (passed before `min_samples` and the evidence ended), LengthUnresolved (statistically
   passed, the length-controlled bounds straddle m0 at the last look), MaxSamplesReached or
   EvidenceExhausted. Exception: a judge whose control catch rate is known to be too low fails the run with
   JudgeInsensitive, also when the statistical fail of step 2 came from it: it cannot certify anything.

Samples are non-control pairs; controls never enter the estimate. `p_value` is per candidate, before the K
correction: the run passes when p_value <= alpha / K. `lower` is at level alpha/K and `upper` at alpha.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from assay.qualification import evidence, fingerprint, length_control, sequential

Verdict = Literal["passed", "failed", "inconclusive"]
GuardrailStatus = Literal["ok", "violated", "insufficient", "not_applicable"]


class SettingsError(ValueError):
    """A test setting outside its allowed range; the message names the setting."""


@dataclasses.dataclass(frozen=True)
class TestSettings:
    """Settings of the sequential non-inferiority test and its guardrails (defaults are the documented ones).

    `length_ratio_max` no longer triggers the length guardrail (it applies at every ratio); it is kept so that
    older specs load, and the report quotes it. `seed` is kept for the same reason (the length bound is no
    longer a bootstrap).
    """

    __test__ = False  # not a pytest test class, despite the name

    margin: float = 0.05
    alpha: float = 0.05
    candidates: int = 1
    min_samples: int = 50
    max_samples: int = 1200
    min_controls: int = 10
    min_judged_pairs: int = 10
    swap_consistency_min: float = 0.75
    control_catch_min: float = 0.90
    length_ratio_max: float = 1.1
    format_tolerance: float = 0.02
    length_first_look: int = 50
    length_alpha_share: float = 0.5
    futility: bool = True
    futility_alpha_share: float = 0.2
    guardrail_alpha_share: float = 0.5
    judge_floor: float = 0.5
    repeat_share_max: float = 0.1
    position_correction: bool = True
    length_ridge: float = length_control.DEFAULT_RIDGE
    bets: tuple[float, ...] = sequential.DEFAULT_BETS
    bet_weights: tuple[float, ...] | None = sequential.DEFAULT_WEIGHTS
    seed: int = 0
    trajectory_points: int = 200

    def __post_init__(self) -> None:
        checks = [
            ("margin", 0.0 < self.margin < 0.5, "in (0, 0.5)"),
            ("alpha", 0.0 < self.alpha < 1.0, "in (0, 1)"),
            ("candidates", self.candidates >= 1, "at least 1"),
            ("min_samples", self.min_samples >= 1, "at least 1"),
            ("max_samples", self.max_samples >= self.min_samples, "at least min_samples"),
            ("min_controls", self.min_controls >= 0, "at least 0"),
            ("min_judged_pairs", self.min_judged_pairs >= 0, "at least 0"),
            ("swap_consistency_min", 0.0 <= self.swap_consistency_min <= 1.0, "in [0, 1]"),
            ("control_catch_min", 0.0 <= self.control_catch_min <= 1.0, "in [0, 1]"),
            ("length_ratio_max", self.length_ratio_max >= 1.0, "at least 1"),
            ("format_tolerance", 0.0 <= self.format_tolerance <= 1.0, "in [0, 1]"),
            ("length_first_look", self.length_first_look >= 1, "at least 1"),
            ("length_alpha_share", 0.0 < self.length_alpha_share <= 1.0, "in (0, 1]"),
            ("futility_alpha_share", 0.0 < self.futility_alpha_share <= 1.0, "in (0, 1]"),
            ("guardrail_alpha_share", 0.0 < self.guardrail_alpha_share <= 1.0, "in (0, 1]"),
            ("judge_floor", 0.0 <= self.judge_floor < 1.0, "in [0, 1)"),
            ("repeat_share_max", 0.0 <= self.repeat_share_max < 1.0, "in [0, 1)"),
            ("length_ridge", self.length_ridge >= 0.0, "at least 0"),
            ("bets", bool(self.bets) and all(0.0 < b < 1.0 for b in self.bets), "fractions in (0, 1)"),
            (
                "bet_weights",
                self.bet_weights is None
                or (len(self.bet_weights) == len(self.bets) and all(w > 0 for w in self.bet_weights)),
                "one positive weight per bet, or None",
            ),
            ("trajectory_points", self.trajectory_points >= 0, "at least 0"),
        ]
        for name, ok, wanted in checks:
            if not ok:
                raise SettingsError(f"test setting {name} must be {wanted}, got {getattr(self, name)!r}")

    @property
    def null_mean(self) -> float:
        """m0 = 0.5 - margin: the mean the lower bound has to clear."""
        return 0.5 - self.margin

    @property
    def pass_level(self) -> float:
        """alpha / K: the level of each candidate's test."""
        return self.alpha / self.candidates

    @property
    def guardrail_level(self) -> float:
        """The level of each judge guardrail's bounds."""
        return self.alpha * self.guardrail_alpha_share

    @property
    def length_looks(self) -> tuple[int, ...]:
        """Pairs with lengths at which the length guardrail looks (the last look, at the end, comes on top).

        Multiples k of `length_first_look`: 1, 2, 4, then every 2 up to 12, then every 4 (50, 100, 200, 300,
        ..., 600, 800, 1000 by default), below max_samples: looks are dense where an equal candidate can
        clear, so it waits less for the next one after the raw test has passed.
        """
        looks, k = [], 1
        while k * self.length_first_look < self.max_samples:
            looks.append(k * self.length_first_look)
            k = 2 * k if k < 4 else k + 2 if k < 12 else k + 4
        return tuple(looks)

    @property
    def length_look_levels(self) -> tuple[float, ...]:
        """The level of each scheduled look (aligned with `length_looks`); the last look has `length_level`.

        Weighted Bonferroni over the looks and the last one: the look at k * length_first_look has weight
        min(k, 6) / 6, so the first looks (which only a clearly better candidate clears) take a small share
        and most of the alpha goes to the looks where an equal candidate's bound can clear.
        """
        first = self.length_first_look
        weights = [min(look // first, 6) / 6 for look in self.length_looks]
        unit = self.pass_level * self.length_alpha_share / (sum(weights) + 1.0)
        return tuple(unit * w for w in weights)

    @property
    def length_level(self) -> float:
        """The level of the length guardrail's last look (when the evidence ends), and of its later looks."""
        first = self.length_first_look
        total = sum(min(look // first, 6) / 6 for look in self.length_looks) + 1.0
        return self.pass_level * self.length_alpha_share / total


@dataclasses.dataclass(frozen=True)
class GuardrailResult:
    """One guardrail's state: status is ok, violated, insufficient (too little evidence) or not_applicable.

    `lower` / `upper` are the guardrail's confidence bounds where it has them; `settled_at` the record count
    at which its status was settled (None while it is not).
    """

    name: str
    status: GuardrailStatus
    reason: str
    value: float | None
    limit: float | None
    evidence: int
    lower: float | None = None
    upper: float | None = None
    settled_at: int | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """The verdict, a CamelCase reason, a sentence for humans, and every number behind it."""

    verdict: Verdict
    reason: str
    message: str
    stats: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: {verdict, reason, message, stats}."""
        return {"verdict": self.verdict, "reason": self.reason, "message": self.message, "stats": self.stats}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def position_advantage(verdicts: evidence.JudgeVerdicts) -> float:
    """How much the answer shown first was favoured, in [-1, 1]: +1 per order it won, -1 per order it lost, halved.

    0 when both orders named the same winner (a consistent pair), 1 when each order named the answer shown
    first.
    """
    first = {"candidate": 1.0, "baseline": -1.0}.get(verdicts.candidate_first, 0.0)
    second = {"baseline": 1.0, "candidate": -1.0}.get(verdicts.baseline_first, 0.0)
    return (first + second) / 2


def tested_score(record: evidence.EvidenceRecord, margin: float, *, corrected: bool = True) -> float:
    """The score the test bets on: the pair's score minus margin times its position advantage, in [0, 1]."""
    s = evidence.score(record)
    if not corrected or record.agreement is not None or record.judge is None:
        return s
    return min(max(s - margin * position_advantage(record.judge), 0.0), 1.0)


class _JudgeGuardrail:
    """A rate that must not be confidently below `limit`, and must be confidently above `floor` to hold."""

    def __init__(self, name: str, reason: str, missing: str, *, limit: float, floor: float, minimum: int, level: float):
        self.name, self.reason, self.missing = name, reason, missing
        self.limit, self.floor, self.minimum = limit, floor, minimum
        self.bounds = sequential.RateBounds(level)
        self.status: GuardrailStatus = "insufficient"
        self.settled_at: int | None = None

    def update(self, hit: bool, records: int) -> None:
        self.bounds.update(hit)
        if self.status != "insufficient":
            return
        if self.bounds.upper < self.limit:
            self.status, self.settled_at = "violated", records
        elif self.bounds.n >= self.minimum and self.bounds.lower >= min(self.floor, self.limit):
            self.status, self.settled_at = "ok", records

    def result(self, *, waived: bool = False) -> GuardrailResult:
        b = self.bounds
        if waived and self.status != "violated":
            return GuardrailResult(self.name, "not_applicable", self.reason, b.rate, self.limit, b.n, b.lower, b.upper)
        if self.status == "insufficient" and self.minimum == 0 and b.n == 0:
            return GuardrailResult(self.name, "ok", self.reason, None, self.limit, 0)
        reason = self.missing if self.status == "insufficient" else self.reason
        limit = self.minimum if self.status == "insufficient" and b.n < self.minimum else self.limit
        return GuardrailResult(self.name, self.status, reason, b.rate, limit, b.n, b.lower, b.upper, self.settled_at)


class Qualification:
    """The decision procedure, fed evidence records in evaluation order, one at a time or in batches.

    `add(record)` / `extend(records)` return the Decision at the record that settles it and None before; once
    decided, further records are ignored and the same Decision is returned. `finish()` decides when the
    evidence has ended. Every statistic is a function of the records consumed: feeding the same records in
    any chunks, with any number of `stats()` reads in between, gives the same decision and the same numbers.
    """

    def __init__(self, settings: TestSettings | None = None) -> None:
        self.settings = settings = settings or TestSettings()
        self.test = sequential.BettingTest(
            settings.null_mean,
            settings.pass_level,
            upper_alpha=settings.alpha,
            futility_at=0.5 if settings.futility else None,
            futility_alpha=settings.alpha * settings.futility_alpha_share,
            bets=settings.bets,
            weights=settings.bet_weights,
        )
        # The same test with every judged pair scored 0: when it passes too, no judge verdict was needed.
        self.judge_free = sequential.BettingTest(
            settings.null_mean, settings.pass_level, bets=settings.bets, weights=settings.bet_weights, bounds=False
        )
        level = settings.guardrail_level
        self.control = _JudgeGuardrail(
            "control",
            "JudgeInsensitive",
            "InsufficientControls",
            limit=settings.control_catch_min,
            floor=settings.judge_floor,
            minimum=settings.min_controls,
            level=level,
        )
        self.swap = _JudgeGuardrail(
            "swap",
            "SwapInconsistent",
            "InsufficientJudgedPairs",
            limit=settings.swap_consistency_min,
            floor=settings.judge_floor,
            minimum=settings.min_judged_pairs,
            level=level,
        )
        self.repeats = sequential.RateBounds(level)
        self._fingerprints = fingerprint.NearDuplicates()
        self._repeat_violated_at: int | None = None
        self.decision: Decision | None = None
        self.records = 0
        self.agreed = 0
        self.verdicts = 0
        self.tie_verdicts = 0
        self.judge_calls = 0
        self.raw_total = 0.0
        # baseline, candidate
        self.format_bounds = (sequential.RateBounds(settings.alpha / 2), sequential.RateBounds(settings.alpha / 2))
        self.chars_baseline: list[int] = []
        self.chars_candidate: list[int] = []
        self.length_scores: list[float] = []
        self.trajectory: list[tuple[int, float, float, float]] = []
        self._stride = 1
        self._length_looks = list(zip(settings.length_looks, settings.length_look_levels, strict=True))
        self.length_level = settings.length_level
        self._length_cleared_at: int | None = None
        self._length_fit: length_control.LengthControlled | None = None
        self._length_fit_key: tuple[int, float] = (-1, 0.0)
        self._length_look: length_control.LengthControlled | None = None  # the latest scheduled look's fit
        self._length_final: length_control.LengthControlled | None = None  # the look when the evidence ends

    @property
    def samples(self) -> int:
        """Non-control pairs consumed."""
        return self.test.n

    @property
    def controls(self) -> int:
        return self.control.bounds.n

    @property
    def controls_caught(self) -> int:
        return self.control.bounds.hits

    @property
    def judged(self) -> int:
        return self.swap.bounds.n

    @property
    def consistent(self) -> int:
        return self.swap.bounds.hits

    def extend(self, records: Iterable[evidence.EvidenceRecord | Mapping[str, Any]]) -> Decision | None:
        """Consume records in order until one settles the run; the Decision then (and at every later call)."""
        for record in records:
            decided = self.add(record)
            if decided is not None:
                return decided
        return self.decision

    def add(self, record: evidence.EvidenceRecord | Mapping[str, Any]) -> Decision | None:
        """Consume one record (or its JSON object, checked first); the Decision if it settles the run."""
        if self.decision is not None:
            return self.decision
        if not isinstance(record, evidence.EvidenceRecord):
            record = evidence.from_dict(record, source="<record>")
        self.records += 1
        settings = self.settings
        s = evidence.score(record)
        verdicts = record.judge
        if record.judge_calls is not None:
            self.judge_calls += record.judge_calls
        elif record.agreement is None and verdicts is not None:
            self.judge_calls += 2
        if record.control:
            self.control.update(s < 0.5, self.records)
            return self._settle()
        tested = tested_score(record, settings.margin, corrected=settings.position_correction)
        self.test.update(tested)
        self.raw_total += s
        self.judge_free.update(0.5 if record.agreement is not None else 0.0)
        if record.agreement is not None:
            self.agreed += 1
        elif verdicts is not None:
            self.swap.update(verdicts.consistent, self.records)
            self.verdicts += 2
            self.tie_verdicts += (verdicts.candidate_first == "tie") + (verdicts.baseline_first == "tie")
        self._track_repeats(record)
        chars = record.chars
        if chars is not None and chars.baseline is not None and chars.candidate is not None:
            self.chars_baseline.append(chars.baseline)
            self.chars_candidate.append(chars.candidate)
            self.length_scores.append(tested)
            if self._length_looks and len(self.length_scores) == self._length_looks[0][0]:
                _, level = self._length_looks.pop(0)
                self._length_look = self._fit_length(level)
                if self._length_cleared_at is None and self._length_look.lower > settings.null_mean:
                    self._length_cleared_at = self.records
        formats = record.format_ok
        if formats is not None:
            for bounds, value in zip(self.format_bounds, (formats.baseline, formats.candidate), strict=True):
                if value is not None:
                    bounds.update(value)

        if settings.trajectory_points and self.samples % self._stride == 0:
            self._sample_trajectory()
        return self._settle()

    def finish(self) -> Decision:
        """The decision when the evidence has ended (the one already taken, if any)."""
        if self.decision is None:
            self.decision = self._conclude(ended=True)
        return self.decision

    # -- evidence -----------------------------------------------------------------------------------------

    def _track_repeats(self, record: evidence.EvidenceRecord) -> None:
        """A candidate answer that near-duplicates its answer to another prompt where the baseline's differ."""
        prints = record.fingerprint
        if record.agreement is not None or prints is None or prints.baseline is None or prints.candidate is None:
            return
        repeated = self._fingerprints.add(prints.baseline, prints.candidate)
        self.repeats.update(repeated)
        if self._repeat_violated_at is None and self.repeats.lower > self.settings.repeat_share_max:
            self._repeat_violated_at = self.records

    def _fit_length(self, level: float | None = None) -> length_control.LengthControlled:
        """The fit over the pairs so far, with bounds at `level` (the last look's level by default)."""
        level = self.length_level if level is None else level
        # The fit is the costly part of a decision: run it at most once per number of pairs and level.
        if self._length_fit is None or self._length_fit_key != (len(self.length_scores), level):
            self._length_fit = length_control.length_controlled(
                self.chars_baseline,
                self.chars_candidate,
                self.length_scores,
                level=level,
                ridge=self.settings.length_ridge,
            )
            self._length_fit_key = (len(self.length_scores), level)
        return self._length_fit

    # -- deciding -----------------------------------------------------------------------------------------

    def _judge_waived(self) -> bool:
        return self.judge_free.crossed_at is not None

    def _settle(self) -> Decision | None:
        settings, test = self.settings, self.test
        if test.crossed_at is None and test.failed_at is not None:
            return self._fail_statistically()
        if test.crossed_at is not None and self.samples >= settings.min_samples:
            decision = self._guarded(final=False)
            if decision is not None:
                return decision
        if self.samples >= settings.max_samples:
            return self._conclude(ended=False)
        return None

    def _fail_statistically(self) -> Decision:
        control = self.control.result()
        if control.status == "violated":
            # A judge that misses degraded answers cannot certify a failure either: say what is wrong.
            return self._decide("failed", control.reason, self._guardrail_message(control))
        upper, m0 = self.test.upper, self.settings.null_mean
        if not self.test.futile:
            reason = "BelowMargin"
            message = (
                f"The candidate is worse than the margin allows: its upper confidence bound {upper:.3f} is below "
                f"{m0:.3f} after {self.samples} pairs."
            )
        else:
            reason = "WorseThanBaseline"
            message = (
                f"The candidate is worse than the baseline: its upper confidence bound at level "
                f"{self.settings.alpha * self.settings.futility_alpha_share:.3g} fell below 0.5 after "
                f"{self.samples} pairs, so showing non-inferiority within the margin is futile."
            )
        return self._decide("failed", reason, message)

    def _guarded(self, *, final: bool) -> Decision | None:
        """After a statistical pass: the guardrails' verdict, or None while one still waits for evidence.

        With final=True (the evidence ended) nothing waits: an unresolved judge guardrail is Inconclusive and
        a length guardrail that never cleared takes its last look.
        """
        control, swap, length, fmt, repeat = self._guardrails(final=final)
        waiting = [g for g in (control, swap) if g.status == "insufficient"]
        for guardrail in (control, swap):
            if guardrail.status == "violated":
                return self._decide("failed", guardrail.reason, self._guardrail_message(guardrail))
        if waiting and not final:
            return None
        if waiting:
            missing = waiting[0]
            message = (
                f"The test passed statistically but {self._ending()} before the {missing.name} guardrail was "
                f"resolved ({missing.evidence} items, rate {_number(missing.value)}, bounds "
                f"[{_number(missing.lower)}, {_number(missing.upper)}])."
            )
            return self._decide("inconclusive", missing.reason, message)
        for guardrail in (fmt, repeat, length):
            if guardrail.status == "violated":
                return self._decide("failed", guardrail.reason, self._guardrail_message(guardrail))
        if length.status == "insufficient" and not final:
            return None
        if length.status == "insufficient":
            message = (
                f"The raw test passed but the length-controlled bounds [{_number(length.lower)}, "
                f"{_number(length.upper)}] still straddle {length.limit:.3f} after {length.evidence} pairs with "
                f"lengths ({self._ending()}): it is not shown whether the judge prefers the candidate or its "
                "length. More samples (a larger maxSamples) would settle it."
            )
            return self._decide("inconclusive", length.reason, message)
        test, m0 = self.test, self.settings.null_mean
        message = (
            f"The candidate is non-inferior within margin {self.settings.margin:g}: its lower confidence bound "
            f"cleared {m0:.3f} at pair {test.crossed_at} (anytime p-value {test.p_value:.4f} <= "
            f"{self.settings.pass_level:.4g}) and every guardrail holds after {self.samples} pairs and "
            f"{self.controls} controls."
        )
        return self._decide("passed", "NonInferior", message)

    def _conclude(self, *, ended: bool) -> Decision:
        settings, test = self.settings, self.test
        if test.crossed_at is not None and self.samples >= settings.min_samples:
            decision = self._guarded(final=True)
            assert decision is not None  # final looks never wait
            return decision
        control = self.control.result()
        if control.status == "violated":
            return self._decide("failed", control.reason, self._guardrail_message(control))
        if test.crossed_at is not None:
            message = (
                f"The test crossed its threshold but {self._ending()} before the minimum of "
                f"{settings.min_samples} pairs."
            )
            return self._decide("inconclusive", "InsufficientSamples", message)
        reason = "EvidenceExhausted" if ended else "MaxSamplesReached"
        message = (
            f"Neither non-inferiority nor inferiority is shown: {self._ending()} after {self.samples} pairs, "
            f"with the confidence interval [{test.lower:.3f}, {test.upper:.3f}] straddling {settings.null_mean:.3f}."
        )
        return self._decide("inconclusive", reason, message)

    def _ending(self) -> str:
        if self.samples >= self.settings.max_samples:
            return f"the maximum of {self.settings.max_samples} pairs was reached"
        return "the evidence ended"

    def _decide(self, verdict: Verdict, reason: str, message: str) -> Decision:
        self.decision = Decision(verdict=verdict, reason=reason, message=message, stats=self.stats())
        return self.decision

    def _guardrail_message(self, guardrail: GuardrailResult) -> str:
        value = _number(guardrail.value)
        texts = {
            "JudgeInsensitive": f"The judge caught only {value} of {guardrail.evidence} degraded controls: its "
            f"upper confidence bound {_number(guardrail.upper)} is below {guardrail.limit}, so it cannot certify "
            "this candidate.",
            "SwapInconsistent": f"The judge named the same winner in both orders for only {value} of "
            f"{guardrail.evidence} judged pairs: its upper confidence bound {_number(guardrail.upper)} is below "
            f"{guardrail.limit}, so its verdicts are order noise.",
            "LengthBiased": f"The candidate writes {self.length_ratio or 0:.2f}x as long and its length-controlled "
            f"bounds [{value}, {_number(guardrail.upper)}] are below {guardrail.limit:.3f} after "
            f"{guardrail.evidence} pairs: the raw test passed, but the judge preferred length, not quality.",
            "FormatRegression": f"The candidate's format pass rate falls below the baseline's by {value}, more "
            f"than the tolerance {guardrail.limit}.",
            "PromptIndependent": f"The candidate repeats a near-identical answer across different prompts in "
            f"{value} of {guardrail.evidence} pairs where the baseline does not (lower bound "
            f"{_number(guardrail.lower)} above {guardrail.limit}): the judge may be fooled by a prompt-independent "
            "answer.",
        }
        return texts[guardrail.reason]

    # -- guardrails ---------------------------------------------------------------------------------------

    def _guardrails(
        self, *, final: bool = False
    ) -> tuple[GuardrailResult, GuardrailResult, GuardrailResult, GuardrailResult, GuardrailResult]:
        """The state of each guardrail (control, swap, length, format, repeat) from the evidence consumed.

        final=True takes the length guardrail's last look (the evidence has ended).
        """
        settings = self.settings
        waived = self._judge_waived()
        control = self.control.result(waived=waived)
        swap = self.swap.result(waived=waived)
        baseline_rate, candidate_rate = self.format_rates
        if baseline_rate is None or candidate_rate is None:
            fmt = GuardrailResult("format", "not_applicable", "FormatRegression", None, settings.format_tolerance, 0)
        else:
            drop = baseline_rate - candidate_rate
            fmt_status: GuardrailStatus = "violated" if drop > settings.format_tolerance + 1e-12 else "ok"
            fmt = GuardrailResult(
                "format",
                fmt_status,
                "FormatRegression",
                drop,
                settings.format_tolerance,
                min(b.n for b in self.format_bounds),
                lower=self._format_drop_lower,
            )
        repeats = self.repeats
        if repeats.n == 0:
            repeat = GuardrailResult(
                "repeat", "not_applicable", "PromptIndependent", None, settings.repeat_share_max, 0
            )
        else:
            repeat_status: GuardrailStatus = "violated" if self._repeat_violated_at is not None else "ok"
            repeat = GuardrailResult(
                "repeat",
                repeat_status,
                "PromptIndependent",
                repeats.rate,
                settings.repeat_share_max,
                repeats.n,
                repeats.lower,
                repeats.upper,
                self._repeat_violated_at,
            )
        return control, swap, self._length_state(final=final), fmt, repeat

    def _length_state(self, *, final: bool) -> GuardrailResult:
        """The length guardrail: ok from the first look whose lower bound clears m0; at the last look (final),
        violated only if the upper bound is below m0 too, else still insufficient (LengthUnresolved)."""
        pairs, m0 = len(self.length_scores), self.settings.null_mean
        if not pairs:
            return GuardrailResult("length", "not_applicable", "LengthBiased", None, m0, 0)
        look = self._length_look
        lower, upper = (None, None) if look is None else (look.lower, look.upper)
        if self._length_cleared_at is not None:
            return GuardrailResult(
                "length", "ok", "LengthBiased", lower, m0, pairs, lower, upper, self._length_cleared_at
            )
        if not final:
            return GuardrailResult("length", "insufficient", "LengthUnresolved", lower, m0, pairs, lower, upper)
        if self._length_final is None:
            self._length_final = self._fit_length()  # the last look, taken once when the evidence ends
        fit = self._length_final
        if fit.lower > m0 or fit.upper < m0:
            # Below m0 as a whole: evidence that the quality at equal length is below the margin.
            status: GuardrailStatus = "ok" if fit.lower > m0 else "violated"
            return GuardrailResult(
                "length", status, "LengthBiased", fit.lower, m0, pairs, fit.lower, fit.upper, self.records
            )
        return GuardrailResult("length", "insufficient", "LengthUnresolved", fit.lower, m0, pairs, fit.lower, fit.upper)

    @property
    def format_rates(self) -> tuple[float | None, float | None]:
        """Format pass rates (baseline, candidate) over the non-control pairs that were checked."""
        baseline, candidate = self.format_bounds
        return baseline.rate, candidate.rate

    @property
    def _format_drop_lower(self) -> float:
        """A lower confidence bound (level alpha) on how much the candidate's format pass rate drops."""
        baseline, candidate = self.format_bounds
        return baseline.lower - candidate.upper if baseline.n and candidate.n else 0.0

    @property
    def length_ratio(self) -> float | None:
        """Mean candidate length over mean baseline length, over pairs with both lengths."""
        total_baseline = sum(self.chars_baseline)
        return sum(self.chars_candidate) / total_baseline if total_baseline else None

    # -- statistics ---------------------------------------------------------------------------------------

    def _sample_trajectory(self) -> None:
        test = self.test
        self.trajectory.append((self.samples, test.lower, test.upper, test.total / test.n))
        if len(self.trajectory) >= self.settings.trajectory_points:
            # Thin: keep every other point and sample half as often from now on.
            self._stride *= 2
            self.trajectory = [p for p in self.trajectory if p[0] % self._stride == 0]

    def stats(self) -> dict[str, Any]:
        """Every number of the report as it stands now (also while undecided); reading it changes nothing."""
        test, settings = self.test, self.settings
        trajectory = [list(point) for point in self.trajectory]
        if settings.trajectory_points and test.n and (not trajectory or trajectory[-1][0] != test.n):
            trajectory.append([test.n, test.lower, test.upper, test.total / test.n])
        guardrails = self._guardrails(final=self._length_final is not None)
        fit = self._length_final or (self._fit_length() if self.length_scores else None)
        baseline_rate, candidate_rate = self.format_rates
        return {
            "samples": test.n,
            "controls": self.controls,
            "records": self.records,
            "estimate": test.estimate,
            "mean_score": self.raw_total / test.n if test.n else None,
            "lower": test.lower,
            "upper": test.upper,
            "p_value": test.p_value,
            "wealth": test.wealth,
            "log_wealth": test.log_wealth,
            "max_wealth": test.max_wealth,
            "threshold": 1.0 / settings.pass_level,
            "null_mean": settings.null_mean,
            "margin": settings.margin,
            "alpha": settings.alpha,
            "candidates": settings.candidates,
            "crossed_at": test.crossed_at,
            "failed_at": test.failed_at,
            "judge_waived": self._judge_waived(),
            "tie_rate": _rate(self.tie_verdicts, self.verdicts),
            "agreement_rate": _rate(self.agreed, test.n),
            "swap_consistency": _rate(self.consistent, self.judged),
            "judged_pairs": self.judged,
            "control_catch_rate": _rate(self.controls_caught, self.controls),
            "length_ratio": self.length_ratio,
            "length_pairs": len(self.length_scores),
            "length_controlled_estimate": None if fit is None else fit.estimate,
            "length_controlled_lower": None if fit is None else fit.lower,
            "length_controlled_upper": None if fit is None else fit.upper,
            "length_effect": None if fit is None else fit.effect,
            "length_controlled_level": self.length_level,
            "repeat_share": self.repeats.rate,
            "format_pass_rate_baseline": baseline_rate,
            "format_pass_rate_candidate": candidate_rate,
            "judge_calls_made": self.judge_calls,
            "judge_calls_saved": 2 * self.agreed,
            # The repeat guardrail is listed once the evidence carries fingerprints (older evidence has none).
            "guardrails": [dataclasses.asdict(g) for g in guardrails if g.name != "repeat" or g.evidence],
            "trajectory": trajectory,
        }


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def decide(
    records: Iterable[evidence.EvidenceRecord | Mapping[str, Any]], settings: TestSettings | None = None
) -> Decision:
    """Consume records in order and stop at the first decision; `stats["records"]` says how many were read."""
    qualification = Qualification(settings)
    decided = qualification.extend(records)
    return decided if decided is not None else qualification.finish()

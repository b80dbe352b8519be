"""The qualification decision: Passed, Failed or Inconclusive, from evidence consumed in evaluation order.

The question is non-inferiority of the candidate on mu = E[s]: H0 mu <= m0 = 0.5 - margin. Records are
consumed one at a time, in the pre-registered order, and the decision is taken at the first record that
settles it. What settles it, in the order it is checked:

1. Statistical pass (`BettingTest.crossed_at`): the mixture betting wealth against m0 reaches K/alpha (K
   candidates on the same pool). By Ville's inequality this is final, so it is never undone by later
   records. A pass is not declared before `min_samples` non-control pairs.
2. Statistical fail, checked only while no pass has been reached: the anytime-valid upper bound (level
   alpha) falls below m0 (reason BelowMargin: clearly worse than the margin allows) or, with
   `futility` on (the default), below 0.5 (reason WorseThanBaseline: the candidate is worse than the
   baseline with confidence 1 - alpha, and proving it within the margin is then futile). The futility rule
   only ever stops a run: it cannot promote, so it does not touch the false-promotion guarantee; it fails an
   equal candidate (mu >= 0.5) with probability at most alpha. Without it a candidate at mu = 0.40 needs
   about 450 pairs to fail instead of about 120 (docs/benchmarks.md).
3. Guardrails, evaluated once the statistical pass is settled and every guardrail has its minimum evidence
   (`min_controls` controls, `min_judged_pairs` judged pairs). Until then records keep being consumed.
   Then, in this order, the first violated guardrail fails the run with its reason, else it passes:
   - JudgeInsensitive: control catch rate below `control_catch_min` (a control is caught when s < 0.5);
   - SwapInconsistent: share of judged, non-agreed, non-control pairs whose two orders named the same
     winner below `swap_consistency_min` (a pair with an invalid verdict in either order is inconsistent);
   - FormatRegression: the candidate's format pass rate is below the baseline's by more than
     `format_tolerance`;
   - LengthBiased: when the candidate's mean length is more than `length_ratio_max` times the baseline's,
     the bootstrap lower bound of the length-controlled estimate must exceed m0. At the statistical pass the
     sample mean has only just cleared its (anytime) bound, and the length-controlled estimate is noisier
     than the mean, so judging it then would veto most good candidates that happen to write longer. It is
     looked at instead when `length_first_look` * 2^k pairs with lengths are available (100, 200, 400, ...
     below max_samples) and once more when the evidence ends, each look at level
     length_alpha_share * alpha / (K * looks) (Bonferroni over the schedule). Under a pure length bias the
     raw test passes for sure and this check alone stands between the candidate and a promotion; it spends
     only half of alpha/K by default because the logistic model is an approximation: a length bias of
     another shape leaves the fit a small residual bias (about +0.005 in our simulations), which the other
     half absorbs. It passes at the first look that clears; it is violated if the last look does not clear.
   The length and format guardrails are not applicable when no pair carries lengths or format checks.
4. End of evidence (`finish`) or `max_samples` non-control pairs, undecided: Inconclusive, with the reason
   InsufficientControls / InsufficientJudgedPairs (statistically passed, guardrail evidence missing),
   InsufficientSamples (passed before `min_samples` and the evidence ended), MaxSamplesReached or
   EvidenceExhausted. Exception: a judge whose control catch rate is known (at least `min_controls`
   controls) and too low fails the run with JudgeInsensitive, because such a judge cannot certify anything
   and more data will not change that; for the same reason JudgeInsensitive is also the reason given
   when the statistical fail of step 2 comes from such a judge.

Samples are non-control pairs; controls never enter the estimate. `p_value` is per candidate, before the K
correction: the run passes when p_value <= alpha / K. `lower` is at level alpha/K and `upper` at alpha.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from assay.qualification import evidence, length_control, sequential

Verdict = Literal["passed", "failed", "inconclusive"]
GuardrailStatus = Literal["ok", "violated", "insufficient", "not_applicable"]


class SettingsError(ValueError):
    """A test setting outside its allowed range; the message names the setting."""


@dataclasses.dataclass(frozen=True)
class TestSettings:
    """Settings of the sequential non-inferiority test and its guardrails (defaults are the documented ones)."""

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
    length_first_look: int = 100
    length_alpha_share: float = 0.5
    futility: bool = True
    bets: tuple[float, ...] = sequential.DEFAULT_BETS
    bootstrap_resamples: int = 300
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
            ("bets", bool(self.bets) and all(0.0 < b < 1.0 for b in self.bets), "fractions in (0, 1)"),
            ("bootstrap_resamples", self.bootstrap_resamples >= 2, "at least 2"),
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


@dataclasses.dataclass(frozen=True)
class GuardrailResult:
    """One guardrail's state: status is ok, violated, insufficient (too little evidence) or not_applicable."""

    name: str
    status: GuardrailStatus
    reason: str
    value: float | None
    limit: float | None
    evidence: int


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


class Qualification:
    """The decision procedure, fed one evidence record at a time in evaluation order.

    `add(record)` returns the Decision at the record that settles it and None before; once decided, further
    records are ignored and the same Decision is returned. `finish()` decides when the evidence has ended.
    """

    def __init__(self, settings: TestSettings | None = None) -> None:
        self.settings = settings = settings or TestSettings()
        fail_at = 0.5 if settings.futility else settings.null_mean
        self.test = sequential.BettingTest(
            settings.null_mean,
            settings.pass_level,
            upper_alpha=settings.alpha,
            fail_at=fail_at,
            bets=settings.bets,
        )
        self.decision: Decision | None = None
        self.records = 0
        self.controls = 0
        self.controls_caught = 0
        self.agreed = 0
        self.judged = 0
        self.consistent = 0
        self.verdicts = 0
        self.tie_verdicts = 0
        self.judge_calls = 0
        self.format_checked = [0, 0]  # baseline, candidate
        self.format_passed = [0, 0]
        self.chars_baseline: list[int] = []
        self.chars_candidate: list[int] = []
        self.length_scores: list[float] = []
        self.trajectory: list[tuple[int, float, float, float]] = []
        self._stride = 1
        # The length guardrail looks at the length-controlled fit at most len(schedule) + 1 times (the last
        # look when the evidence ends), splitting length_alpha_share * alpha / K evenly (Bonferroni).
        looks = []
        point = settings.length_first_look
        while point < settings.max_samples:
            looks.append(point)
            point *= 2
        self._length_schedule = looks
        self.length_level = settings.pass_level * settings.length_alpha_share / (len(looks) + 1)
        self._length_cleared = False
        self._length_violated = False
        self._length_fit: length_control.LengthControlled | None = None
        self._length_fit_pairs = -1

    @property
    def samples(self) -> int:
        """Non-control pairs consumed."""
        return self.test.n

    def add(self, record: evidence.EvidenceRecord | Mapping[str, Any]) -> Decision | None:
        """Consume one record (or its JSON object, checked first); the Decision if it settles the run."""
        if self.decision is not None:
            return self.decision
        if not isinstance(record, evidence.EvidenceRecord):
            record = evidence.from_dict(record, source="<record>")
        self.records += 1
        s = evidence.score(record)
        verdicts = record.judge
        if record.judge_calls is not None:
            self.judge_calls += record.judge_calls
        elif record.agreement is None and verdicts is not None:
            self.judge_calls += 2
        if record.control:
            self.controls += 1
            self.controls_caught += s < 0.5
            return self._settle()
        self.test.update(s)
        if record.agreement is not None:
            self.agreed += 1
        elif verdicts is not None:
            self.judged += 1
            self.consistent += verdicts.consistent
            self.verdicts += 2
            self.tie_verdicts += (verdicts.candidate_first == "tie") + (verdicts.baseline_first == "tie")
        chars = record.chars
        if chars is not None and chars.baseline is not None and chars.candidate is not None:
            self.chars_baseline.append(chars.baseline)
            self.chars_candidate.append(chars.candidate)
            self.length_scores.append(s)
        formats = record.format_ok
        if formats is not None:
            for side, value in enumerate((formats.baseline, formats.candidate)):
                if value is not None:
                    self.format_checked[side] += 1
                    self.format_passed[side] += value
        if self.settings.trajectory_points and self.samples % self._stride == 0:
            self._sample_trajectory()
        return self._settle()

    def finish(self) -> Decision:
        """The decision when the evidence has ended (the one already taken, if any)."""
        if self.decision is None:
            self.decision = self._conclude(ended=True)
        return self.decision

    # -- deciding ---------------------------------------------------------------------------------------

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
        control = self._guardrails()[0]
        if control.status == "violated":
            # A judge that misses degraded answers cannot certify a failure either: say what is wrong.
            return self._decide("failed", control.reason, self._guardrail_message(control))
        upper, m0 = self.test.upper, self.settings.null_mean
        if upper < m0:
            reason = "BelowMargin"
            message = (
                f"The candidate is worse than the margin allows: its upper confidence bound {upper:.3f} is below "
                f"{m0:.3f} after {self.samples} pairs."
            )
        else:
            reason = "WorseThanBaseline"
            message = (
                f"The candidate is worse than the baseline: its upper confidence bound {upper:.3f} fell below 0.5 "
                f"after {self.samples} pairs, so showing non-inferiority within the margin is futile."
            )
        return self._decide("failed", reason, message)

    def _guarded(self, *, final: bool) -> Decision | None:
        """After a statistical pass: the guardrails' verdict, or None while one still waits for evidence.

        With final=True (the evidence ended) nothing waits: missing evidence is Inconclusive and a length
        check that never cleared takes its last look.
        """
        control, swap, _, fmt = self._guardrails()
        waiting = [g for g in (control, swap) if g.status == "insufficient"]
        if waiting and not final:
            return None
        for guardrail in (control, swap):
            if guardrail.status == "violated":
                return self._decide("failed", guardrail.reason, self._guardrail_message(guardrail))
        if waiting:
            missing = waiting[0]
            message = (
                f"The test passed statistically but {self._ending()} before the {missing.name} guardrail had its "
                f"minimum evidence ({missing.evidence} of {missing.limit:g})."
            )
            return self._decide("inconclusive", missing.reason, message)
        if fmt.status == "violated":
            return self._decide("failed", fmt.reason, self._guardrail_message(fmt))
        length = self._look_at_length(final=final)
        if length.status == "insufficient":
            return None
        if length.status == "violated":
            return self._decide("failed", length.reason, self._guardrail_message(length))
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
        control = self._guardrails()[0]
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
        value = "n/a" if guardrail.value is None else f"{guardrail.value:.3f}"
        texts = {
            "JudgeInsensitive": f"The judge caught only {value} of {guardrail.evidence} degraded controls, below "
            f"{guardrail.limit}: it cannot certify this candidate.",
            "SwapInconsistent": f"The judge named the same winner in both orders for only {value} of "
            f"{guardrail.evidence} judged pairs, below {guardrail.limit}: its verdicts are order noise.",
            "LengthBiased": f"The candidate writes {self.length_ratio or 0:.2f}x longer and its length-controlled "
            f"lower bound {value} does not clear {guardrail.limit:.3f}: the preference may be for length.",
            "FormatRegression": f"The candidate's format pass rate falls below the baseline's by {value}, more "
            f"than the tolerance {guardrail.limit}.",
        }
        return texts[guardrail.reason]

    # -- guardrails -------------------------------------------------------------------------------------

    def _guardrails(self) -> tuple[GuardrailResult, GuardrailResult, GuardrailResult, GuardrailResult]:
        """The state of each guardrail (control, swap, length, format) now, without running any fit."""
        settings = self.settings
        control = _threshold_guardrail(
            "control",
            "JudgeInsensitive",
            "InsufficientControls",
            part=self.controls_caught,
            whole=self.controls,
            least=settings.control_catch_min,
            minimum=settings.min_controls,
        )
        swap = _threshold_guardrail(
            "swap",
            "SwapInconsistent",
            "InsufficientJudgedPairs",
            part=self.consistent,
            whole=self.judged,
            least=settings.swap_consistency_min,
            minimum=settings.min_judged_pairs,
        )
        baseline_rate, candidate_rate = self.format_rates
        if baseline_rate is None or candidate_rate is None:
            fmt = GuardrailResult("format", "not_applicable", "FormatRegression", None, settings.format_tolerance, 0)
        else:
            drop = baseline_rate - candidate_rate
            fmt_status: GuardrailStatus = "violated" if drop > settings.format_tolerance + 1e-12 else "ok"
            fmt = GuardrailResult(
                "format", fmt_status, "FormatRegression", drop, settings.format_tolerance, min(self.format_checked)
            )
        return control, swap, self._length_state(), fmt

    def _length_state(self) -> GuardrailResult:
        pairs, ratio, m0 = len(self.length_scores), self.length_ratio, self.settings.null_mean
        fit = self._length_fit
        lower = None if fit is None else fit.lower
        if ratio is None:
            return GuardrailResult("length", "not_applicable", "LengthBiased", None, m0, 0)
        if self._length_cleared or ratio <= self.settings.length_ratio_max:
            return GuardrailResult("length", "ok", "LengthBiased", lower, m0, pairs)
        status: GuardrailStatus = "violated" if self._length_violated else "insufficient"
        return GuardrailResult("length", status, "LengthBiased", lower, m0, pairs)

    def _look_at_length(self, *, final: bool) -> GuardrailResult:
        """Take a scheduled look at the length-controlled fit if one is due (always when final)."""
        state = self._length_state()
        if state.status != "insufficient":
            return state
        pairs = len(self.length_scores)
        due = [point for point in self._length_schedule if point <= pairs]
        if not due and not final:
            return state
        self._length_schedule = [point for point in self._length_schedule if point > pairs]
        fit = self._fit_length()
        if fit.lower > self.settings.null_mean:
            self._length_cleared = True
            return self._length_state()
        self._length_violated = final
        return self._length_state()

    def _fit_length(self) -> length_control.LengthControlled:
        # The fit is the costly part of a decision: run it at most once per number of pairs.
        if self._length_fit is None or self._length_fit_pairs != len(self.length_scores):
            self._length_fit = length_control.length_controlled(
                self.chars_baseline,
                self.chars_candidate,
                self.length_scores,
                level=self.length_level,
                resamples=self.settings.bootstrap_resamples,
                seed=self.settings.seed,
            )
            self._length_fit_pairs = len(self.length_scores)
        return self._length_fit

    @property
    def format_rates(self) -> tuple[float | None, float | None]:
        """Format pass rates (baseline, candidate) over the non-control pairs that were checked."""
        return _rate(self.format_passed[0], self.format_checked[0]), _rate(
            self.format_passed[1], self.format_checked[1]
        )

    @property
    def length_ratio(self) -> float | None:
        """Mean candidate length over mean baseline length, over pairs with both lengths."""
        total_baseline = sum(self.chars_baseline)
        return sum(self.chars_candidate) / total_baseline if total_baseline else None

    # -- statistics -------------------------------------------------------------------------------------

    def _sample_trajectory(self) -> None:
        test = self.test
        self.trajectory.append((self.samples, test.lower, test.upper, test.total / test.n))
        if len(self.trajectory) >= self.settings.trajectory_points:
            # Thin: keep every other point and sample half as often from now on.
            self._stride *= 2
            self.trajectory = [p for p in self.trajectory if p[0] % self._stride == 0]

    def stats(self) -> dict[str, Any]:
        """Every number of the report as it stands now (also while undecided, for progress in status)."""
        test, settings = self.test, self.settings
        if settings.trajectory_points and test.n and (not self.trajectory or self.trajectory[-1][0] != test.n):
            self.trajectory.append((test.n, test.lower, test.upper, test.total / test.n))
        ratio = self.length_ratio
        fit = self._length_fit
        if fit is None and ratio is not None and ratio > settings.length_ratio_max:
            fit = self._fit_length()  # for the report only: no look is taken
        baseline_rate, candidate_rate = self.format_rates
        return {
            "samples": test.n,
            "controls": self.controls,
            "records": self.records,
            "estimate": test.estimate,
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
            "tie_rate": _rate(self.tie_verdicts, self.verdicts),
            "agreement_rate": _rate(self.agreed, test.n),
            "swap_consistency": _rate(self.consistent, self.judged),
            "judged_pairs": self.judged,
            "control_catch_rate": _rate(self.controls_caught, self.controls),
            "length_ratio": ratio,
            "length_pairs": len(self.length_scores),
            "length_controlled_estimate": None if fit is None else fit.estimate,
            "length_controlled_lower": None if fit is None else fit.lower,
            "length_controlled_level": self.length_level,
            "format_pass_rate_baseline": baseline_rate,
            "format_pass_rate_candidate": candidate_rate,
            "judge_calls_made": self.judge_calls,
            "judge_calls_saved": 2 * self.agreed,
            "guardrails": [dataclasses.asdict(g) for g in self._guardrails()],
            "trajectory": [list(point) for point in self.trajectory],
        }

    _stats = stats  # the name the controller's first draft used


def _threshold_guardrail(
    name: str, reason: str, missing_reason: str, *, part: int, whole: int, least: float, minimum: int
) -> GuardrailResult:
    """A rate that must be at least `least` once `minimum` cases were seen."""
    rate = _rate(part, whole)
    if whole < minimum:
        return GuardrailResult(name, "insufficient", missing_reason, rate, minimum, whole)
    if rate is None:
        return GuardrailResult(name, "not_applicable", reason, None, least, 0)
    return GuardrailResult(name, "ok" if rate >= least else "violated", reason, rate, least, whole)


def decide(
    records: Iterable[evidence.EvidenceRecord | Mapping[str, Any]], settings: TestSettings | None = None
) -> Decision:
    """Consume records in order and stop at the first decision; `stats["records"]` says how many were read."""
    qualification = Qualification(settings)
    for record in records:
        decision = qualification.add(record)
        if decision is not None:
            return decision
    return qualification.finish()

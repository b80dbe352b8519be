"""The live quality watch of one promoted route, pure: from judged samples to counts, the drift verdict and the
reason the route is not watched. No Kubernetes, no HTTP, no clock of its own: the caller passes `now`.

A watch belongs to one promotion (candidate and the time the Promoted condition turned True); a new promotion
starts a new watch. Its state lives in `status.watch` (`routepolicy.WatchStatus`) and is resumed from there:
- Indefinite: `drift.DriftDetector`, carried by its own `to_dict` / `from_dict`.
- Window: `drift.WatchWindow` over the first `windowSamples` scores, carried as the scores themselves and
  replayed on load (at most 2,000); once the window completes without an alarm, the indefinite detector watches
  on, so a route is never left unwatched by design.

Samples are admitted under the daily caps (samples spread over the UTC day, and dollars); every sample whose
replay or judging failed counts as a judge error, never as a score. Starvation, an exhausted budget and a high
judge error rate each make a "not watched" reason: never a silent pass.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Literal

from assay.api import routepolicy
from assay.watch import drift

WatchStatus = routepolicy.WatchStatus
NotWatched = Literal["SamplerStarved", "BudgetExhausted", "JudgeErrors"]

# Judge errors are rated over this many recent samples, and only once this many are in.
RECENT_SAMPLES = 50
MIN_RECENT_FOR_ERROR_RATE = 10
SECONDS_PER_DAY = 86_400.0
# The daily sample cap is spread over the day, with this much of it available at once (one hour's worth).
PACING_HEADROOM_SECONDS = 3_600.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What spec.watch and the qualification margin say, in the detector's terms."""

    mode: Literal["Window", "Indefinite"]
    drift_margin: float
    threshold: float
    window_samples: int
    alpha: float
    max_samples_per_day: int
    max_cost_per_day: float
    starved_after: datetime.timedelta
    max_judge_error_rate: float

    @classmethod
    def from_spec(cls, watch: routepolicy.Watch, *, qualification_margin: float) -> Settings:
        """Raises drift.DriftSettingsError naming the setting when the combination is out of range."""
        return cls(
            mode=watch.mode,
            drift_margin=drift.drift_margin(qualification_margin, gap=watch.drift_gap),
            threshold=drift.threshold_for(watch.mean_days_between_false_alarms, float(watch.max_samples_per_day)),
            window_samples=watch.window_samples,
            alpha=watch.alpha,
            max_samples_per_day=watch.max_samples_per_day,
            max_cost_per_day=watch.max_cost_per_day,
            starved_after=datetime.timedelta(seconds=watch.starved_after_seconds),
            max_judge_error_rate=watch.max_judge_error_rate,
        )


def start(*, candidate: str, promoted_at: datetime.datetime, settings: Settings) -> WatchStatus:
    """A fresh watch of one promotion; its starvation clock starts at the promotion."""
    return WatchStatus(
        candidate=candidate,
        promoted_at=promoted_at,
        mode=settings.mode,
        drift_margin=settings.drift_margin,
        threshold=settings.threshold if settings.mode == "Indefinite" else None,
        e_value=1.0 if settings.mode == "Indefinite" else None,
    )


def for_promotion(
    current: WatchStatus | None, *, candidate: str, promoted_at: datetime.datetime, settings: Settings
) -> WatchStatus:
    """The watch of this promotion: `current` when it is the same one, else a fresh one."""
    if current is not None and current.candidate == candidate and current.promoted_at == promoted_at:
        return current.model_copy(deep=True)
    return start(candidate=candidate, promoted_at=promoted_at, settings=settings)


def _roll_day(watch: WatchStatus, now: datetime.datetime) -> None:
    day = now.astimezone(datetime.UTC).date().isoformat()
    if watch.day != day:
        watch.day, watch.samples_today, watch.cost_today_usd = day, 0, 0.0


def paced_allowance(settings: Settings, now: datetime.datetime) -> int:
    """Samples the day may have taken by `now`: the cap spread evenly over the UTC day, one hour's worth ahead."""
    utc = now.astimezone(datetime.UTC)
    elapsed = utc.hour * 3600 + utc.minute * 60 + utc.second + utc.microsecond / 1e6
    share = min(1.0, (elapsed + PACING_HEADROOM_SECONDS) / SECONDS_PER_DAY)
    return max(1, min(settings.max_samples_per_day, math.ceil(settings.max_samples_per_day * share)))


def admit(watch: WatchStatus, settings: Settings, *, now: datetime.datetime) -> str | None:
    """None when one more sample may be judged now; else why not (Alarmed, DailySampleCap, BudgetExhausted).
    Rolls the daily counts over at UTC midnight."""
    _roll_day(watch, now)
    if watch.alarmed_at is not None:
        return "Alarmed"
    if watch.cost_today_usd >= settings.max_cost_per_day:
        return "BudgetExhausted"
    if watch.samples_today >= paced_allowance(settings, now):
        return "DailySampleCap"
    return None


def _window(settings: Settings, scores: list[float]) -> drift.WatchWindow:
    window = drift.WatchWindow(settings.drift_margin, samples=settings.window_samples, alpha=settings.alpha)
    for score in scores:
        window.update(score)
    return window


def _indefinite(settings: Settings, state: dict[str, object]) -> drift.DriftDetector:
    if state.get("threshold") is not None:
        return drift.DriftDetector.from_dict(state)
    return drift.DriftDetector(settings.drift_margin, settings.threshold)


def record(
    watch: WatchStatus,
    settings: Settings,
    *,
    score: float | None,
    cost_usd: float,
    now: datetime.datetime,
) -> bool:
    """Count one judged sample (`score` None: its replay or judging failed) and feed its score to the detector.
    True when this sample proved the drift (the first alarm of the watch; later calls return False)."""
    _roll_day(watch, now)
    watch.samples_today += 1
    watch.cost_today_usd = round(watch.cost_today_usd + cost_usd, 9)
    watch.cost_usd = round(watch.cost_usd + cost_usd, 9)
    watch.last_sample_at = now
    watch.recent_errors = [*watch.recent_errors, score is None][-RECENT_SAMPLES:]
    if score is None:
        watch.judge_errors += 1
        return False
    if watch.alarmed_at is not None:
        return False
    mean = watch.mean_score or 0.0
    watch.mean_score = (mean * watch.samples + score) / (watch.samples + 1)
    watch.samples += 1
    tally = drift.Tally(watch.wins, watch.ties, watch.losses)
    tally.add(score)
    watch.wins, watch.ties, watch.losses = tally.wins, tally.ties, tally.losses
    alarmed = _feed(watch, settings, score)
    if alarmed:
        watch.alarmed_at = watch.samples
    return alarmed


def _feed(watch: WatchStatus, settings: Settings, score: float) -> bool:
    state = dict(watch.detector)
    if settings.mode == "Window" and not state.get("handedOver"):
        scores = [float(s) for s in state.get("scores", [])]
        window = _window(settings, scores)
        alarmed = window.update(score)
        if window.complete:
            # The window held: the indefinite detector watches on from here, from a clean start.
            detector = drift.DriftDetector(settings.drift_margin, settings.threshold)
            watch.detector = {**detector.to_dict(), "handedOver": True, "windowUpper": window.upper}
            watch.threshold, watch.e_value = detector.threshold, detector.e_value
        else:
            watch.detector = {"scores": [*scores, score], "windowUpper": window.upper}
        return alarmed
    detector = _indefinite(settings, state)
    alarmed = detector.update(score)
    watch.detector = {**detector.to_dict(), **({"handedOver": True} if state.get("handedOver") else {})}
    watch.e_value, watch.threshold = detector.e_value, detector.threshold
    return alarmed


def judge_error_rate(watch: WatchStatus) -> float | None:
    """The share of failed judgings among the recent samples; None while too few are in to say."""
    if len(watch.recent_errors) < MIN_RECENT_FOR_ERROR_RATE:
        return None
    return sum(watch.recent_errors) / len(watch.recent_errors)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether the route is watched now: reason None and a message, or a NotWatched reason and why."""

    reason: NotWatched | None
    message: str


def verdict(watch: WatchStatus, settings: Settings, *, now: datetime.datetime) -> Verdict:
    """Watched or not, and why. Checked in this order: budget, judge errors, starvation."""
    _roll_day(watch, now)
    if watch.cost_today_usd >= settings.max_cost_per_day:
        return Verdict(
            "BudgetExhausted",
            f"spent {watch.cost_today_usd:.4f} USD on watching today, the cap of spec.watch.maxCostPerDay "
            f"({settings.max_cost_per_day:g}); watching resumes at 00:00 UTC",
        )
    rate = judge_error_rate(watch)
    if rate is not None and rate > settings.max_judge_error_rate:
        return Verdict(
            "JudgeErrors",
            f"{rate:.0%} of the last {len(watch.recent_errors)} samples could not be replayed or judged, above "
            f"spec.watch.maxJudgeErrorRate ({settings.max_judge_error_rate:g}); check the judge and the baseline",
        )
    since = watch.last_sample_at or watch.promoted_at
    if since is not None and now - since > settings.starved_after:
        return Verdict(
            "SamplerStarved",
            f"no sample since {since.isoformat()} (spec.watch.starvedAfterSeconds "
            f"{int(settings.starved_after.total_seconds())}); check that the gateway's sampler callback reaches "
            "assay's recorder",
        )
    return Verdict(None, f"watching {watch.candidate}: {_summary(watch)}")


def _summary(watch: WatchStatus) -> str:
    evidence = (
        f"e-value {watch.e_value:.3g} of {watch.threshold:.3g}"
        if watch.e_value is not None and watch.threshold is not None
        else f"window of {len(watch.detector.get('scores', []))} samples"
    )
    return f"{watch.samples} samples ({watch.wins} wins, {watch.ties} ties, {watch.losses} losses), {evidence}"


def drift_message(watch: WatchStatus) -> str:
    """What the QualityDrift condition and Event say once the drop is proven."""
    mean = f"{watch.mean_score:.3f}" if watch.mean_score is not None else "n/a"
    return (
        f"live quality of {watch.candidate} dropped below the drift margin {watch.drift_margin:.3f} "
        f"(mean score {mean}) against the last known good baseline, proven at sample {watch.alarmed_at}: "
        f"{_summary(watch)}"
    )

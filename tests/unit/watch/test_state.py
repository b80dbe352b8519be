"""The watch state machine, specified by scenario: counts, caps, the drift verdict, not-watched reasons, resume."""

from __future__ import annotations

import datetime
import random

import pytest

from assay.api import routepolicy
from assay.watch import drift, state

PROMOTED = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.UTC)


def settings(**watch: object) -> state.Settings:
    return state.Settings.from_spec(routepolicy.Watch.model_validate(watch), qualification_margin=0.05)


def fresh(s: state.Settings) -> routepolicy.WatchStatus:
    return state.start(candidate="mini", promoted_at=PROMOTED, settings=s)


def resumed(watch: routepolicy.WatchStatus) -> routepolicy.WatchStatus:
    """Through the status wire form and back, as the operator stores and reads it."""
    return routepolicy.WatchStatus.model_validate(watch.to_wire())


def feed(watch: routepolicy.WatchStatus, s: state.Settings, scores: list[float | None], *, through_status: bool):
    alarms = []
    now = PROMOTED
    for score in scores:
        now += datetime.timedelta(seconds=1)
        if state.record(watch, s, score=score, cost_usd=0.001, now=now):
            alarms.append(watch.samples)
        if through_status:
            watch = resumed(watch)
    return watch, alarms


def test_defaults_give_the_drift_margin_and_a_year_between_false_alarms() -> None:
    s = settings()
    assert s.drift_margin == pytest.approx(0.40)
    assert s.threshold == pytest.approx(365 * 500)
    assert s.mode == "Indefinite"


def test_counts_wins_ties_losses_and_errors_separately() -> None:
    s = settings()
    watch, _ = feed(fresh(s), s, [1.0, 0.75, 0.5, 0.25, 0.0, None], through_status=False)
    assert (watch.samples, watch.wins, watch.ties, watch.losses, watch.judge_errors) == (5, 2, 1, 2, 1)
    assert watch.mean_score == pytest.approx(0.5)
    assert watch.cost_usd == pytest.approx(0.006)


def test_a_proven_drop_alarms_once_and_the_resumed_state_alarms_at_the_same_sample() -> None:
    s = settings(meanDaysBetweenFalseAlarms=0.1, maxSamplesPerDay=200)  # threshold 20
    rng = random.Random(7)
    scores: list[float | None] = [rng.choice([0.0, 0.0, 0.25, 0.5, 1.0]) for _ in range(300)]
    direct, alarms = feed(fresh(s), s, scores, through_status=False)
    stored, stored_alarms = feed(fresh(s), s, scores, through_status=True)
    assert len(alarms) == 1 and alarms == stored_alarms
    assert direct.alarmed_at == stored.alarmed_at == alarms[0]
    assert stored.e_value is not None and stored.e_value >= stored.threshold == pytest.approx(20)
    assert "dropped below the drift margin 0.400" in state.drift_message(stored)
    assert state.admit(stored, s, now=PROMOTED) == "Alarmed"


def test_a_candidate_as_good_as_the_baseline_does_not_alarm() -> None:
    s = settings(meanDaysBetweenFalseAlarms=1, maxSamplesPerDay=1000)
    rng = random.Random(3)
    scores: list[float | None] = [rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]) for _ in range(500)]
    watch, alarms = feed(fresh(s), s, scores, through_status=True)
    assert alarms == [] and watch.alarmed_at is None
    assert watch.e_value is not None and watch.e_value < watch.threshold


def test_the_window_alarms_like_the_betting_test_and_hands_over_when_it_holds() -> None:
    s = settings(mode="Window", windowSamples=40, alpha=0.05)
    _, alarms = feed(fresh(s), s, [0.0] * 40, through_status=True)
    window = drift.WatchWindow(0.40, samples=40, alpha=0.05)
    expected = next(i for i in range(1, 41) if window.update(0.0))
    assert alarms == [expected]

    held, alarms = feed(fresh(s), s, [0.5, 1.0, 0.5, 0.75] * 12, through_status=True)
    assert alarms == [] and held.detector.get("handedOver") is True
    assert held.threshold == pytest.approx(s.threshold) and held.samples == 48


def test_daily_samples_are_spread_over_the_day_and_roll_over_at_midnight() -> None:
    s = settings(maxSamplesPerDay=240)  # 10 an hour, 10 ahead
    watch = fresh(s)
    one_am = datetime.datetime(2026, 12, 4, 1, 0, tzinfo=datetime.UTC)
    taken = 0
    while state.admit(watch, s, now=one_am) is None:
        state.record(watch, s, score=0.5, cost_usd=0.0, now=one_am)
        taken += 1
    assert taken == 20
    assert state.admit(watch, s, now=one_am) == "DailySampleCap"
    assert state.admit(watch, s, now=one_am + datetime.timedelta(days=1)) is None
    assert watch.samples_today == 0


def test_an_exhausted_budget_is_not_watched_until_the_next_day() -> None:
    s = settings(maxCostPerDay=0.01)
    watch = fresh(s)
    now = PROMOTED + datetime.timedelta(minutes=1)
    state.record(watch, s, score=0.5, cost_usd=0.02, now=now)
    assert state.admit(watch, s, now=now) == "BudgetExhausted"
    assert state.verdict(watch, s, now=now).reason == "BudgetExhausted"
    assert "maxCostPerDay" in state.verdict(watch, s, now=now).message
    tomorrow = now + datetime.timedelta(days=1)
    assert state.admit(watch, s, now=tomorrow) is None
    assert watch.cost_usd == pytest.approx(0.02)  # the promotion's total stays


def test_rising_judge_errors_are_not_watched() -> None:
    s = settings(maxJudgeErrorRate=0.2)
    watch, _ = feed(fresh(s), s, [0.5] * 7 + [None] * 3, through_status=True)
    assert state.verdict(watch, s, now=PROMOTED + datetime.timedelta(seconds=11)).reason == "JudgeErrors"
    watch, _ = feed(watch, s, [0.5] * 40, through_status=True)
    assert state.verdict(watch, s, now=PROMOTED + datetime.timedelta(seconds=60)).reason is None


def test_no_sample_for_too_long_is_starvation_counted_from_the_promotion() -> None:
    s = settings(starvedAfterSeconds=600)
    watch = fresh(s)
    assert state.verdict(watch, s, now=PROMOTED + datetime.timedelta(seconds=599)).reason is None
    starved = state.verdict(watch, s, now=PROMOTED + datetime.timedelta(seconds=601))
    assert starved.reason == "SamplerStarved" and "starvedAfterSeconds" in starved.message
    state.record(watch, s, score=0.5, cost_usd=0.0, now=PROMOTED + datetime.timedelta(seconds=700))
    assert state.verdict(watch, s, now=PROMOTED + datetime.timedelta(seconds=800)).reason is None


def test_a_new_promotion_starts_a_new_watch() -> None:
    s = settings()
    watch, _ = feed(fresh(s), s, [0.0, 0.0], through_status=False)
    same = state.for_promotion(watch, candidate="mini", promoted_at=PROMOTED, settings=s)
    assert same.samples == 2
    later = state.for_promotion(watch, candidate="mini", promoted_at=PROMOTED + datetime.timedelta(hours=1), settings=s)
    assert later.samples == 0 and later.e_value == 1.0
    other = state.for_promotion(watch, candidate="nano", promoted_at=PROMOTED, settings=s)
    assert other.candidate == "nano" and other.samples == 0


@pytest.mark.parametrize(
    ("watch", "field"),
    [
        ({"sampleRate": 0}, "sampleRate"),
        ({"sampleRate": 1.5}, "sampleRate"),
        ({"maxSamplesPerDay": 0}, "maxSamplesPerDay"),
        ({"maxCostPerDay": -1}, "maxCostPerDay"),
        ({"mode": "Sometimes"}, "mode"),
        ({"driftGap": 0.45}, "driftGap"),
        ({"onDrift": "Ignore"}, "onDrift"),
        ({"meanDaysBetweenFalseAlarms": 0}, "meanDaysBetweenFalseAlarms"),
    ],
)
def test_out_of_range_watch_settings_are_refused_naming_the_field(watch: dict[str, object], field: str) -> None:
    with pytest.raises(Exception, match=field):
        routepolicy.Watch.model_validate(watch)

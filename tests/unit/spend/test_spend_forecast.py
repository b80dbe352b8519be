"""Month-end forecast: observed spend plus the rest of the month at the daily mean, with a t prediction interval."""

from __future__ import annotations

import datetime
import math
import random

import pytest

from assay.spend import forecast


def clock(day: int, hour: int = 0) -> forecast.MonthClock:
    return forecast.MonthClock.at(datetime.datetime(2026, 4, day, hour, tzinfo=datetime.UTC))


def test_the_clock_counts_complete_days_and_the_rest_of_the_month():
    at = clock(11, 6)  # 10 complete days of a 30-day April, a quarter of the 11th gone
    assert (at.complete_days, at.day_fraction, at.days_in_month) == (10, 0.25, 30)
    assert at.remaining_days == pytest.approx(19.75)
    assert at.day_end(0) == datetime.datetime(2026, 4, 2, tzinfo=datetime.UTC)


def test_the_forecast_is_spend_so_far_plus_the_daily_mean_over_the_remaining_days():
    daily = [10.0, 12.0, 8.0, 11.0, 9.0, 10.0, 10.0, 12.0, 8.0, 10.0]
    month = forecast.month_end(daily, today=2.5, clock=clock(11, 6))
    assert month.method == "daily-mean-t" and month.days_observed == 10
    assert month.spent == pytest.approx(102.5)
    assert month.point == pytest.approx(102.5 + 19.75 * 10.0)
    sd = math.sqrt(sum((d - 10) ** 2 for d in daily) / 9)
    half = 2.262 * sd * math.sqrt(19.75 + 19.75**2 / 10)
    assert (month.low, month.high) == (pytest.approx(month.point - half), pytest.approx(month.point + half))


def test_the_interval_covers_the_realized_month_about_95_percent_of_the_time():
    rng, covered, trials = random.Random(7), 0, 2000
    at = clock(11)
    for _ in range(trials):
        days = [max(0.0, rng.gauss(50, 10)) for _ in range(30)]
        month = forecast.month_end(days[:10], today=0.0, clock=at)
        assert month.low is not None and month.high is not None
        covered += month.low <= sum(days) <= month.high
    assert 0.92 <= covered / trials <= 0.98


def test_the_low_end_never_falls_below_what_is_already_spent():
    month = forecast.month_end([100.0, 0.0], today=0.0, clock=clock(3))
    assert month.low == month.spent == 100.0


def test_without_two_complete_days_it_is_the_run_rate_without_an_interval():
    month = forecast.month_end([], today=6.0, clock=clock(1, 12))  # half of April 1st: $6
    assert (month.method, month.low, month.high) == ("run-rate", None, None)
    assert month.point == pytest.approx(6.0 / 0.5 * 30)


def test_money_left_on_the_table_is_the_saving_on_what_is_not_yet_spent():
    month = forecast.month_end([10.0, 10.0], today=0.0, clock=clock(3))  # $20 spent, 28 days at $10 to go
    assert month.point == pytest.approx(300.0)
    assert forecast.left_on_table(month, 60.0) == pytest.approx(0.6 * 280)
    assert month.if_saving(0.6) == pytest.approx(20 + 0.4 * 280)
    assert forecast.left_on_table(month, None) == 0.0


def test_day_counts_must_match_the_clock():
    with pytest.raises(ValueError, match="expected 10 complete days"):
        forecast.month_end([1.0], today=0.0, clock=clock(11))


def test_student_t_quantiles():
    assert forecast.t975(1) == 12.706 and forecast.t975(29) == 2.045 and forecast.t975(100) == 1.96

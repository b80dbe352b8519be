"""The drift tests, specified by simulation: false alarms under no drift, detection under drift, state."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from assay.qualification import sequential, simulate
from assay.watch import drift

TIES = 0.3


def first_alarm(detector: drift.DriftDetector | drift.WatchWindow, scores: list[float]) -> int | None:
    """The sample (1-based) at which the detector alarmed on these scores, None if it did not."""
    for score in scores:
        if detector.update(score):
            return detector.alarmed_at
    return None


def test_drift_margin_sits_a_gap_below_the_qualification_bar() -> None:
    assert drift.drift_margin() == pytest.approx(0.40)  # margin 0.05: bar 0.45, drift below 0.40
    assert drift.drift_margin(0.0) == pytest.approx(0.45)
    assert drift.drift_margin(0.1, gap=0.02) == pytest.approx(0.38)


def test_threshold_is_mean_days_between_false_alarms_times_samples_per_day() -> None:
    per_day = drift.samples_per_day(100_000, 0.01, cap=500)
    assert per_day == 500
    assert drift.samples_per_day(100_000, 0.01) == pytest.approx(1000)
    assert drift.threshold_for(30, per_day) == pytest.approx(15_000)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: drift.DriftDetector(0.0, 100), "drift_margin"),
        (lambda: drift.DriftDetector(0.4, 1.0), "threshold"),
        (lambda: drift.DriftDetector(0.4, 100, bets=[0.2, 1.0], weights=[1, 1]), "bets"),
        (lambda: drift.DriftDetector(0.4, 100, bets=[], weights=[]), "bets"),
        (lambda: drift.DriftDetector(0.4, 100, bets=[0.2, 0.4], weights=[1.0]), "weights"),
        (lambda: drift.DriftDetector(0.4, 100, bets=[0.2], weights=[0.0]), "weights"),
        (lambda: drift.WatchWindow(1.2, samples=100), "drift_margin"),
        (lambda: drift.WatchWindow(0.4, samples=0), "samples"),
        (lambda: drift.WatchWindow(0.4, samples=100, alpha=0.0), "alpha"),
        (lambda: drift.drift_margin(0.5), "qualification_margin"),
        (lambda: drift.drift_margin(0.05, gap=0.5), "gap"),
        (lambda: drift.threshold_for(0, 1000), "mean_days_between_false_alarms"),
        (lambda: drift.threshold_for(1, -1), "samples_per_day"),
        (lambda: drift.threshold_for(0.0001, 1000), "threshold"),
        (lambda: drift.samples_per_day(1000, 0.0), "sample_rate"),
        (lambda: drift.samples_per_day(1000, 0.1, cap=0), "cap"),
        (lambda: drift.DriftDetector.from_dict({"threshold": 100}), "state"),
    ],
)
def test_invalid_settings_are_rejected_naming_the_setting(build, name) -> None:
    with pytest.raises(drift.DriftSettingsError, match=rf"drift setting {name} must be"):
        build()


@pytest.mark.parametrize("score", [-0.1, 1.5, math.nan])
def test_a_score_outside_0_1_is_rejected(score: float) -> None:
    for detector in (drift.DriftDetector(0.4, 100), drift.WatchWindow(0.4, samples=10)):
        with pytest.raises(ValueError, match="score must be in"):
            detector.update(score)


def test_e_detector_follows_its_definition() -> None:
    """M_t(l) = max(M_(t-1)(l), 1) * (1 + l (m_d - x_t)), l = scaled fraction / (1 - m_d), averaged with weights."""
    m_d, scores = 0.4, simulate.simulate_scores(200, mu=0.35, tie_rate=TIES, seed=3)
    bets, weights = (0.1, 0.3), (2.0, 1.0)
    detector = drift.DriftDetector(m_d, 1e12, bets=bets, weights=weights)
    statistics_, dispersion = [1.0, 1.0], 0.0
    for n, x in enumerate(scores):
        level = sequential.scale_level(dispersion, n)
        fractions = sequential.fractions(bets, level)
        statistics_ = [
            max(m, 1.0) * (1 + f / (1 - m_d) * (m_d - x)) for m, f in zip(statistics_, fractions, strict=True)
        ]
        dispersion += (x - 0.5) ** 2
        detector.update(x)
        assert detector.e_value == pytest.approx((2 * statistics_[0] + statistics_[1]) / 3, rel=1e-12)


def test_every_factor_stays_positive_at_the_largest_bets() -> None:
    detector = drift.DriftDetector(0.05, 1e300, bets=(0.99,), weights=(1.0,))
    for _ in range(500):
        detector.update(1.0)  # the worst score for a bet on scores below m_d
    assert detector.statistics[0] > 0


def test_state_round_trips_through_a_json_dict() -> None:
    scores = simulate.simulate_scores(600, mu=0.38, tie_rate=TIES, seed=11)
    detector = drift.DriftDetector(0.4, 1e6)
    for x in scores[:300]:
        detector.update(x)
    state = json.loads(json.dumps(detector.to_dict(), allow_nan=False))
    assert state["samples"] == 300 and state["wins"] + state["ties"] + state["losses"] == 300
    assert state["eValue"] == detector.e_value and state["threshold"] == 1e6 and state["alarmed"] is False
    restored = drift.DriftDetector.from_dict(state)
    assert restored.to_dict() == detector.to_dict()
    for x in scores[300:]:
        assert restored.update(x) == detector.update(x)
    assert restored.to_dict() == detector.to_dict()


def test_after_an_alarm_the_detector_stays_alarmed() -> None:
    detector = drift.DriftDetector(0.45, 100)
    alarm = first_alarm(detector, [0.0] * 100)
    assert alarm is not None and detector.e_value >= 100
    for _ in range(1000):
        assert detector.update(1.0)
    assert detector.alarmed_at == alarm and detector.n == alarm
    assert drift.DriftDetector.from_dict(detector.to_dict()).alarmed


@pytest.mark.parametrize(("mu", "m_d", "ties"), [(0.5, 0.45, TIES), (0.40, 0.40, TIES), (0.40, 0.40, 0.0)])
def test_e_detector_mean_run_length_without_drift_is_at_least_the_threshold(mu: float, m_d: float, ties: float) -> None:
    """At mu = 0.5 and at mu = m_d (the worst case, with and without ties): a small threshold so runs end.

    Runs are cut at 2,000 samples, which only shortens the measured mean (a conservative estimate).
    """
    c, horizon, runs = 20.0, 2000, 150
    lengths = []
    for seed in range(runs):
        alarm = first_alarm(
            drift.DriftDetector(m_d, c), simulate.simulate_scores(horizon, mu=mu, tie_rate=ties, seed=seed)
        )
        lengths.append(horizon if alarm is None else alarm)
    assert statistics.fmean(lengths) >= c


def test_e_detector_alarms_within_n_samples_with_probability_at_most_n_over_c_at_the_drift_margin() -> None:
    c, n, runs = 100.0, 40, 1000
    alarms = sum(
        first_alarm(drift.DriftDetector(0.4, c), simulate.simulate_scores(n, mu=0.4, tie_rate=TIES, seed=seed))
        is not None
        for seed in range(runs)
    )
    assert alarms / runs <= n / c  # measured 0 of 1000: the bound is loose


@pytest.mark.parametrize(
    ("m_d", "mu", "median_at_most"),
    [(0.45, 0.40, 950), (0.45, 0.35, 250), (0.45, 0.30, 120), (0.40, 0.35, 900), (0.40, 0.30, 240)],
)
def test_e_detector_detects_a_drop_below_the_drift_margin(m_d: float, mu: float, median_at_most: int) -> None:
    """Threshold 1000, 200 samples at mu = 0.5 before the drop; delays counted from the drop."""
    delays = []
    for seed in range(60):
        detector = drift.DriftDetector(m_d, 1000.0)
        assert first_alarm(detector, simulate.simulate_scores(200, mu=0.5, tie_rate=TIES, seed=10_000 + seed)) is None
        alarm = first_alarm(detector, simulate.simulate_scores(10_000, mu=mu, tie_rate=TIES, seed=seed))
        assert alarm is not None
        delays.append(alarm - 200)
    assert statistics.median(delays) <= median_at_most


@pytest.mark.parametrize("mu", [0.40, 0.5])
def test_window_false_alarm_rate_is_at_most_alpha_at_and_above_the_drift_margin(mu: float) -> None:
    runs, alpha = 400, 0.05
    alarms = sum(
        first_alarm(
            drift.WatchWindow(0.4, samples=300, alpha=alpha, bounds=False),
            simulate.simulate_scores(300, mu=mu, tie_rate=TIES, seed=seed),
        )
        is not None
        for seed in range(runs)
    )
    # Ville's bound; 2 binomial standard errors of slack for the simulation itself.
    assert alarms / runs <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / runs)


def test_window_alarms_when_its_upper_bound_falls_below_the_drift_margin() -> None:
    window = drift.WatchWindow(0.4, samples=1000)
    for x in simulate.simulate_scores(1000, mu=0.30, tie_rate=TIES, seed=5):
        before = window.upper
        if window.update(x):
            break
        assert window.upper >= 0.4 - 1e-6
    assert window.alarmed_at is not None and before >= 0.4 - 1e-6 and window.upper < 0.4 + 1e-6
    assert window.update(1.0) and window.n == window.alarmed_at  # stays alarmed, takes no more scores


def test_window_detects_a_drop_and_completes_without_one() -> None:
    caught = [
        first_alarm(
            drift.WatchWindow(0.4, samples=600, bounds=False),
            simulate.simulate_scores(600, mu=0.30, tie_rate=TIES, seed=s),
        )
        for s in range(40)
    ]
    assert all(alarm is not None for alarm in caught)
    window = drift.WatchWindow(0.4, samples=50, bounds=False)
    assert first_alarm(window, simulate.simulate_scores(50, mu=0.5, tie_rate=TIES, seed=1)) is None
    assert window.complete and window.tally.wins + window.tally.ties + window.tally.losses == 50
    with pytest.raises(ValueError, match="complete"):
        window.update(0.5)

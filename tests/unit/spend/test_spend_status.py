"""status.spend of a RoutePolicy: figures per window, written only when they change, realized saving after a
promotion against the projection, one batch of queries for every policy, and a failed read that keeps the last
good figures under SpendKnown=False (never zero spend)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from promstub import FakePrometheus, vector

from assay import httpclient
from assay.controllers import conditions, handle_spend, status
from assay.spend import figures, prometheus, reading, sources

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
FAST = httpclient.RetryPolicy(max_attempts=1, base_delay=0.01, max_delay=0.01)
SPEND = "litellm_spend_metric_total"
REQUESTS = "litellm_proxy_total_requests_metric_total"


def litellm_query(metric: str, window: str) -> str:
    return f'sum by (requested_model) (increase({metric}{{tag_assay_watch!="true"}}[{window}]))'


def readings(day: tuple[float, float | None], week: tuple[float, float | None] | None = None) -> dict:
    week = week or day
    return {
        "day": figures.Reading(*day),
        "week": figures.Reading(*week),
        "month": figures.Reading(*week),
    }


def policy(name: str, *, route: str | None = None, kind: str = "LiteLLMConfigMap", **status: Any) -> dict:
    gateway: dict[str, Any] = {"kind": kind}
    if route:
        gateway["route"] = route
    return {
        "apiVersion": "assay.dev/v1alpha1",
        "kind": "RoutePolicy",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": 1},
        "spec": {"promptType": name, "gateway": gateway},
        "status": status,
    }


def test_each_window_carries_spend_requests_and_the_live_cost_per_request():
    spend = figures.spend_status(
        None, readings((12.5, 250.2), (80.0, 1600.0)), promoted_at=None, projected_ratio=None, now=NOW
    )
    assert spend["readAt"] == "2026-12-04T12:00:00Z"
    assert spend["day"] == {"usd": 12.5, "requests": 250.0, "costPerRequestUsd": 0.04996, "display": "$12.50"}
    assert spend["week"]["costPerRequestUsd"] == 0.05
    assert spend["month"]["display"] == "$80.00"


def test_a_route_without_requests_has_no_cost_per_request_and_a_cheap_route_shows_its_fraction_of_a_dollar():
    spend = figures.spend_status(None, readings((0.0042, None)), promoted_at=None, projected_ratio=None, now=NOW)
    assert spend["day"] == {"usd": 0.0042, "display": "$0.0042"}


def test_unchanged_figures_come_back_as_they_were_so_nothing_is_written():
    first = figures.spend_status(None, readings((12.5, 250)), promoted_at=None, projected_ratio=None, now=NOW)
    later = NOW + datetime.timedelta(minutes=5)
    again = figures.spend_status(first, readings((12.5, 250)), promoted_at=None, projected_ratio=None, now=later)
    assert again == first, "readAt stays at the read that last changed a figure"
    moved = figures.spend_status(first, readings((12.6, 251)), promoted_at=None, projected_ratio=None, now=later)
    assert moved["readAt"] == "2026-12-04T12:05:00Z" and moved["day"]["usd"] == 12.6


def test_noise_below_six_significant_digits_is_not_a_change():
    first = figures.spend_status(None, readings((12.5, 250)), promoted_at=None, projected_ratio=None, now=NOW)
    again = figures.spend_status(
        first, readings((12.5000001, 250.0001)), promoted_at=None, projected_ratio=None, now=NOW
    )
    assert again is not None and again["readAt"] == first["readAt"]


def test_the_baseline_cost_per_request_is_kept_from_before_the_promotion_and_frozen_after_it():
    before = figures.spend_status(
        None, readings((10.0, 100), (70.0, 700)), promoted_at=None, projected_ratio=0.45, now=NOW
    )
    assert before["realized"] == {"baselineCostPerRequestUsd": 0.1}
    promoted_at = NOW + datetime.timedelta(minutes=1)
    soon = NOW + datetime.timedelta(hours=3)
    measuring = figures.spend_status(
        before, readings((8.0, 100), (60.0, 700)), promoted_at=promoted_at, projected_ratio=0.45, now=soon
    )
    assert measuring["realized"] == {
        "baselineCostPerRequestUsd": 0.1,
        "projectedRatio": 0.45,
        "display": "measuring (projected 45%)",
    }, "the 1d window still holds baseline traffic: no realized figure yet"


def test_a_day_after_the_promotion_the_realized_saving_compares_cost_per_request_after_and_before():
    before = {"realized": {"baselineCostPerRequestUsd": 0.1}}
    a_day_later = NOW + datetime.timedelta(days=1, minutes=5)
    spend = figures.spend_status(
        before, readings((5.8, 100), (50.0, 700)), promoted_at=NOW, projected_ratio=0.45, now=a_day_later
    )
    assert spend["realized"] == {
        "baselineCostPerRequestUsd": 0.1,
        "promotedCostPerRequestUsd": 0.058,
        "ratio": 0.42,
        "projectedRatio": 0.45,
        "display": "42% (projected 45%)",
    }


def test_a_promotion_seen_without_a_pre_promotion_figure_says_so_instead_of_guessing():
    spend = figures.spend_status(
        None, readings((5.8, 100)), promoted_at=NOW, projected_ratio=0.45, now=NOW + datetime.timedelta(days=2)
    )
    assert spend["realized"] == {"projectedRatio": 0.45, "display": "no baseline figure"}


def test_the_spend_queries_leave_out_calls_tagged_assay_watch():
    source = sources.LiteLLMSource(exclude=sources.EXCLUDE_ASSAY_CALLS)
    assert [q.expr for q in source.spend_queries("1d")] == [litellm_query(SPEND, "1d")]
    assert sources.selector({"namespace": "shop"}, exclude={"tag_x": 'a"b'}) == '{namespace="shop",tag_x!="a\\"b"}'


def test_one_batch_of_queries_reads_every_policy_route(fake_prometheus: FakePrometheus):
    for window in figures.WINDOWS.values():
        fake_prometheus.answer(
            litellm_query(SPEND, window),
            vector(({"requested_model": "support"}, 3.0), ({"requested_model": "faq"}, 1.0)),
        )
        fake_prometheus.answer(
            litellm_query(REQUESTS, window),
            vector(({"requested_model": "support"}, 30), ({"requested_model": "faq"}, 20)),
        )
    policies = [policy(f"p{i}", route="support" if i % 2 else "faq") for i in range(40)]
    policies += [policy("quiet", route="unused"), policy("weights", kind="HTTPRoute")]
    days = reading.PastDays()
    with prometheus.PrometheusClient(fake_prometheus.url, retry=FAST) as client:
        outcomes, sent = handle_spend.read_round(client, policies, now=NOW, host="prom:9090", days=days)
        # 2 queries a window, whatever the number of policies; for the forecast, one per complete day of the month
        # (3 on the 4th) and one for today so far.
        assert sent == 6 + 3 + 1 and len(fake_prometheus.asked) == 10
        midnights = {f"{datetime.datetime(2026, 12, day, tzinfo=datetime.UTC).timestamp():.3f}" for day in (2, 3, 4)}
        assert {a["time"] for a in fake_prometheus.asked} == {f"{NOW.timestamp():.3f}"} | midnights
        later = NOW + datetime.timedelta(minutes=1)
        _, again = handle_spend.read_round(client, policies, now=later, host="prom:9090", days=days)
    assert again == 6 + 1, "a complete day is read once: the next round asks only the windows and today"
    found = {body["metadata"]["name"]: outcome.readings for body, outcome in outcomes}
    assert "weights" not in found, "an HTTPRoute exports no spend assay can read"
    assert found["p1"] == readings((3.0, 30.0))
    assert found["p0"] == readings((1.0, 20.0))
    assert found["quiet"] == readings((0.0, 0.0)), "a route without series among the others' spent nothing"


def test_a_prometheus_that_is_down_fails_every_policy_with_one_attempt_per_query():
    with prometheus.PrometheusClient("http://127.0.0.1:9", retry=FAST) as client:
        outcomes, sent = handle_spend.read_round(client, [policy("a"), policy("b")], now=NOW, host="127.0.0.1:9")
    assert sent == 1, "the batch remembers the failure: no second attempt for the next policy"
    assert {o.reason for _, o in outcomes} == {"PrometheusUnreachable"}
    assert all("127.0.0.1:9" in (o.message or "") for _, o in outcomes)


def test_a_batch_reads_at_one_time_only():
    batch = reading.Batch(prometheus.PrometheusClient("http://127.0.0.1:9", retry=FAST), at=1.0)
    with pytest.raises(ValueError, match=r"reads at 1\.0"):
        batch.query("up", at=2.0)


def test_a_failed_read_keeps_the_last_good_figures_and_turns_spend_known_false():
    good = handle_spend.Outcome(readings=readings((12.5, 250)))
    known = handle_spend.desired_status({}, good, generation=1, now=NOW)
    assert conditions.get(known["conditions"], "SpendKnown")["status"] == "True"
    down = handle_spend.Outcome(reason="PrometheusUnreachable", message="spend not read from Prometheus at prom:9090")
    later = NOW + datetime.timedelta(minutes=5)
    unknown = handle_spend.desired_status(known, down, generation=1, now=later)
    assert unknown["spend"] == known["spend"], "the last good values stay: never zero spend"
    condition = conditions.get(unknown["conditions"], "SpendKnown")
    assert (condition["status"], condition["reason"]) == ("False", "PrometheusUnreachable")
    assert condition["lastTransitionTime"] == "2026-12-04T12:05:00Z"
    assert "prom:9090" in condition["message"]


def test_the_promotion_time_is_the_promoted_condition_s_transition():
    promoted = {
        "promotedCandidate": "mini",
        "savings": {"percent": 45.0},
        "spend": {"realized": {"baselineCostPerRequestUsd": 0.1}},
        "conditions": [
            {
                "type": "Promoted",
                "status": "True",
                "reason": "Promoted",
                "message": "",
                "lastTransitionTime": "2026-12-03T10:00:00Z",
            }
        ],
    }
    outcome = handle_spend.Outcome(readings=readings((5.0, 100)))
    desired = handle_spend.desired_status(promoted, outcome, generation=1, now=NOW)
    assert desired["spend"]["realized"]["ratio"] == 0.5
    assert desired["spend"]["realized"]["display"] == "50% (projected 45%)"


def test_a_second_identical_read_changes_nothing_so_an_idle_policy_is_not_written_again():
    with prometheus.PrometheusClient("http://127.0.0.1:9", retry=FAST) as client:
        first = handle_spend.read_round(client, [policy("a")], now=NOW, host="127.0.0.1:9")[0][0][1]
        second = handle_spend.read_round(client, [policy("a")], now=NOW, host="127.0.0.1:9")[0][0][1]
    later = NOW + datetime.timedelta(minutes=5)
    for outcome, again in ((first, second), (handle_spend.Outcome(readings=readings((1.0, 10))),) * 2):
        written = handle_spend.desired_status({}, outcome, generation=1, now=NOW)
        assert (
            status.changed_fields(written, handle_spend.desired_status(written, again, generation=1, now=later)) == {}
        )


def test_a_canary_under_way_freezes_the_baseline_figure_and_the_baseline_alone_does_not():
    assert handle_spend.promoted_at({}, now=NOW) is None
    assert handle_spend.promoted_at({"canaryStep": 0}, now=NOW) == NOW
    assert handle_spend.promoted_at({"promotedCandidate": "mini"}, now=NOW) == NOW


OUTCOME_QUERY = 'sum(increase(tickets_resolved_total{queue="support"}[$window]))'


def with_outcome(body: dict, query: str = OUTCOME_QUERY) -> dict:
    body["spec"]["outcome"] = {"name": "resolved ticket", "query": query}
    return body


def test_each_window_carries_the_outcomes_and_the_cost_per_outcome():
    spend = figures.spend_status(
        None, {"day": figures.Reading(12.5, 250.0, 50.0)}, promoted_at=None, projected_ratio=None, now=NOW
    )
    assert spend["day"]["outcomes"] == 50.0 and spend["day"]["costPerOutcomeUsd"] == 0.25
    none = figures.spend_status(
        None, {"day": figures.Reading(12.5, 250.0, 0.0)}, promoted_at=None, projected_ratio=None, now=NOW
    )
    assert none["day"]["outcomes"] == 0.0 and "costPerOutcomeUsd" not in none["day"], "no outcome: no cost per one"


def test_the_cost_per_outcome_is_kept_before_the_promotion_and_measured_a_day_after_it():
    before = figures.spend_status(
        None,
        {"day": figures.Reading(10.0, 100, 20), "week": figures.Reading(70.0, 700, 140)},
        promoted_at=None,
        projected_ratio=None,
        now=NOW,
    )
    assert before["realized"] == {"baselineCostPerRequestUsd": 0.1, "baselineCostPerOutcomeUsd": 0.5}
    soon = figures.spend_status(
        before,
        {"day": figures.Reading(6.0, 100, 20), "week": figures.Reading(66.0, 700, 140)},
        promoted_at=NOW,
        projected_ratio=0.45,
        now=NOW + datetime.timedelta(hours=3),
    )
    assert soon["realized"]["baselineCostPerOutcomeUsd"] == 0.5, "frozen at the promotion"
    assert "promotedCostPerOutcomeUsd" not in soon["realized"], "the day is not all after the promotion yet"
    later = figures.spend_status(
        soon,
        {"day": figures.Reading(6.0, 100, 24), "week": figures.Reading(66.0, 700, 140)},
        promoted_at=NOW,
        projected_ratio=0.45,
        now=NOW + datetime.timedelta(days=1, minutes=1),
    )
    assert later["realized"]["promotedCostPerOutcomeUsd"] == 0.25
    assert later["realized"]["ratio"] == 0.4 and later["realized"]["baselineCostPerOutcomeUsd"] == 0.5


def test_the_outcome_query_is_read_for_each_window_and_no_series_is_not_zero_outcomes(
    fake_prometheus: FakePrometheus,
):
    for window in figures.WINDOWS.values():
        fake_prometheus.answer(litellm_query(SPEND, window), vector(({"requested_model": "support"}, 3.0)))
        fake_prometheus.answer(litellm_query(REQUESTS, window), vector(({"requested_model": "support"}, 30)))
        fake_prometheus.answer(
            OUTCOME_QUERY.replace("$window", window), vector(({"queue": "support"}, 4.0), ({"queue": "support"}, 2))
        )
    policies = [
        with_outcome(policy("counted", route="support")),
        with_outcome(policy("uncounted", route="support"), "sum(increase(nothing_total[$window]))"),
        policy("plain", route="support"),
    ]
    with prometheus.PrometheusClient(fake_prometheus.url, retry=FAST) as client:
        outcomes, _ = handle_spend.read_round(client, policies, now=NOW, host="prom:9090")
    found = {body["metadata"]["name"]: outcome for body, outcome in outcomes}
    assert found["counted"].readings["day"] == figures.Reading(3.0, 30.0, 6.0), "several series are summed"
    assert found["counted"].outcome_problem is None and found["counted"].counts_outcomes
    uncounted = found["uncounted"]
    assert uncounted.readings == readings((3.0, 30.0)), "the spend stands when the outcomes cannot be read"
    assert uncounted.outcome_problem is not None and uncounted.outcome_problem[0] == "NoSeries"
    assert "nothing_total[1d]" in uncounted.outcome_problem[1] and "prom:9090" in uncounted.outcome_problem[1]
    assert not found["plain"].counts_outcomes and found["plain"].readings == readings((3.0, 30.0))


def test_outcome_known_says_whether_the_outcomes_were_read_and_goes_with_spec_outcome():
    counted = handle_spend.Outcome(readings={"day": figures.Reading(3.0, 30.0, 6.0)}, counts_outcomes=True)
    known = handle_spend.desired_status({}, counted, generation=1, now=NOW)
    assert conditions.get(known["conditions"], "OutcomeKnown")["status"] == "True"
    assert known["spend"]["day"]["costPerOutcomeUsd"] == 0.5
    failed = handle_spend.Outcome(
        readings={"day": figures.Reading(3.0, 30.0)},
        counts_outcomes=True,
        outcome_problem=("NoSeries", "outcomes not read from Prometheus at prom:9090: no series"),
    )
    unknown = handle_spend.desired_status(known, failed, generation=1, now=NOW)
    condition = conditions.get(unknown["conditions"], "OutcomeKnown")
    assert (condition["status"], condition["reason"]) == ("False", "NoSeries")
    assert conditions.get(unknown["conditions"], "SpendKnown")["status"] == "True", "the spend was read"
    removed = handle_spend.desired_status(
        unknown, handle_spend.Outcome(readings=readings((3.0, 30.0))), generation=2, now=NOW
    )
    assert conditions.get(removed["conditions"], "OutcomeKnown") is None


def test_admission_asks_for_the_window_placeholder_in_the_outcome_query():
    from assay.api import routepolicy

    with pytest.raises(ValueError, match=r"query"):
        routepolicy.Outcome(name="resolved ticket", query="sum(tickets_resolved_total)")
    with pytest.raises(ValueError, match=r"name"):
        routepolicy.Outcome(name=" ticket\n", query=OUTCOME_QUERY)


def test_the_month_end_forecast_and_the_money_left_on_the_table_are_in_status(fake_prometheus: FakePrometheus):
    # The stand-in answers whatever the time: each complete day (Dec 1-3) spent 3.0 USD, today so far 1.5.
    fake_prometheus.answer(litellm_query(SPEND, "1d"), vector(({"requested_model": "support"}, 3.0)))
    fake_prometheus.answer(litellm_query(SPEND, "43200s"), vector(({"requested_model": "support"}, 1.5)))
    for window in ("7d", "30d"):
        fake_prometheus.answer(litellm_query(SPEND, window), vector(({"requested_model": "support"}, 10.5)))
    qualified = {
        "bestCandidate": "mini",
        "candidates": [{"name": "mini", "phase": "Passed", "savingsPercent": 60.0}],
    }
    body = policy("support", **qualified)
    with prometheus.PrometheusClient(fake_prometheus.url, retry=FAST) as client:
        outcomes, _ = handle_spend.read_round(client, [body, policy("quiet")], now=NOW, host="prom:9090")
    outcome = outcomes[0][1]
    written = handle_spend.desired_status(body["status"], outcome, generation=1, now=NOW)
    found = written["spend"]["forecast"]
    # Spent 9 + 1.5; 27.5 days left at the daily mean of 3; no day-to-day spread, so a zero-width interval.
    assert found["month"] == "2026-12" and found["method"] == "daily-mean-t" and found["daysObserved"] == 3
    assert (found["spentUsd"], found["monthEndUsd"], found["lowUsd"], found["highUsd"]) == (10.5, 93.0, 93.0, 93.0)
    assert found["leftOnTableUsd"] == 49.5, "60% of the 82.5 USD not yet spent"
    assert found["display"] == "$93.00 ($93.00-$93.00), $49.50 left on the table"
    promoted = {**qualified, "promotedCandidate": "mini"}
    assert (
        "leftOnTableUsd"
        not in handle_spend.desired_status(promoted, outcome, generation=1, now=NOW)["spend"]["forecast"]
    ), "nothing is left on the table once the candidate serves"


def test_a_route_without_spend_this_month_forecasts_zero(fake_prometheus: FakePrometheus):
    for window in figures.WINDOWS.values():
        fake_prometheus.answer(litellm_query(SPEND, window), vector(({"requested_model": "support"}, 3.0)))
    with prometheus.PrometheusClient(fake_prometheus.url, retry=FAST) as client:
        outcomes, _ = handle_spend.read_round(client, [policy("quiet", route="unused")], now=NOW, host="prom:9090")
    written = handle_spend.desired_status({}, outcomes[0][1], generation=1, now=NOW)
    assert written["spend"]["forecast"]["monthEndUsd"] == 0.0


def test_a_round_sums_each_answer_once_whatever_the_number_of_policies(fake_prometheus: FakePrometheus, monkeypatch):
    for window in figures.WINDOWS.values():
        fake_prometheus.answer(litellm_query(SPEND, window), vector(({"requested_model": "support"}, 3.0)))
    calls: list[str] = []
    spend = reading.spend

    def counting(*args: Any, **kwargs: Any) -> dict[str, float]:
        if kwargs.get("at") == NOW.timestamp():  # not the forecast's past days (read once a source, too)
            calls.append(args[2])
        return spend(*args, **kwargs)

    monkeypatch.setattr(reading, "spend", counting)
    policies = [policy(f"p{i}", route="support") for i in range(40)]
    with prometheus.PrometheusClient(fake_prometheus.url, retry=FAST) as client:
        outcomes, _ = handle_spend.read_round(client, policies, now=NOW, host="prom:9090")
    assert all(outcome.readings is not None and outcome.readings["day"].usd == 3.0 for _, outcome in outcomes)
    windows = [window for window in calls if window in figures.WINDOWS.values()]
    assert sorted(windows) == sorted(figures.WINDOWS.values()), "one sum per window for the 40 policies, not 40"
    assert len(calls) == len(windows) + 1, "and one for today so far"

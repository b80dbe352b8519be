"""A report recomputes the decision from evidence exactly as the operator does, and gathers its numbers."""

from __future__ import annotations

import dataclasses

from assay.qualification import cost, decision, simulate
from assay.report import content


def test_report_reaches_the_same_verdict_at_the_same_record_as_the_decision(passing_records, settings):
    expected = decision.decide(passing_records, settings)

    report = content.build(passing_records, settings, name="run", source="test")

    assert report.verdict == expected.verdict == "passed"
    assert report.reason == expected.reason
    assert report.stats["records"] == expected.stats["records"] < len(passing_records)
    assert report.stats["lower"] == expected.stats["lower"]
    assert report.available_records == len(passing_records)


def test_score_distribution_counts_the_consumed_pairs_and_controls(passing_records, settings):
    report = content.build(passing_records, settings, name="run", source="test")

    assert sum(report.scores["pairs"]) == report.stats["samples"]
    assert sum(report.scores["controls"]) == report.stats["controls"]
    mean = sum(count * s for count, s in zip(report.scores["pairs"], (0, 0.25, 0.5, 0.75, 1), strict=True))
    assert abs(mean / report.stats["samples"] - report.stats["estimate"]) < 1e-12


def test_cost_and_latency_come_from_the_consumed_records_and_the_prices(passing_records, settings):
    prices = {"big": cost.Price(10.0, 30.0), "small": cost.Price(1.0, 2.0)}

    report = content.build(
        passing_records,
        settings,
        name="run",
        source="test",
        baseline_model="big",
        candidate_model="small",
        prices=prices,
    )

    consumed = [r.to_dict() for r in passing_records[: report.stats["records"]]]
    expected = cost.per_request(consumed, baseline_model="big", candidate_model="small", prices=prices)
    assert report.money == expected
    assert report.money["cost"]["candidate"] < report.money["cost"]["baseline"]
    assert report.money["latency_ms"]["candidate"] < report.money["latency_ms"]["baseline"]
    percent, per_1k = report.savings
    assert percent is not None and 80 < percent < 100 and per_1k is not None and per_1k > 0


def test_unpriced_models_leave_cost_unknown_but_latency_measured(passing_records, settings):
    report = content.build(passing_records, settings, name="run", source="test", candidate_model="no-such-model")

    assert report.money["cost"]["candidate"] is None
    assert report.money["latency_ms"]["candidate"] is not None
    assert report.savings == (None, None)
    assert "n/a" in content.savings_line(report)


def test_evidence_that_has_not_ended_leaves_the_run_undecided(settings):
    records = simulate.simulate_evidence(30, simulate.Scenario(mu=0.5), seed=1)

    running = content.build(records, settings, name="run", source="test", ended=False)
    ended = content.build(records, settings, name="run", source="test", ended=True)

    assert running.verdict == content.UNDECIDED and running.outcome is None
    assert "has not decided after 30 pairs" in running.message
    assert content.stopped_at(running) is None
    assert ended.verdict == "inconclusive" and ended.reason == "EvidenceExhausted"


def test_a_recorded_verdict_that_the_evidence_no_longer_supports_is_flagged(passing_records, settings):
    agrees = content.RecordedStatus(phase="Passed", reason="NonInferior")
    disagrees = content.RecordedStatus(phase="Failed", reason="BelowMargin")
    running = content.RecordedStatus(phase="Running", reason="Evaluating")

    def build(recorded: content.RecordedStatus) -> content.Report:
        return content.build(passing_records, settings, name="run", source="test", recorded=recorded)

    assert not build(agrees).disagrees_with_status
    assert build(disagrees).disagrees_with_status
    assert not build(running).disagrees_with_status


def test_guardrail_rows_state_each_limit_as_a_condition(passing_records, settings):
    report = content.build(passing_records, settings, name="run", source="test")

    rows = {row.name: row for row in content.guardrail_rows(report)}

    assert set(rows) == {"control", "swap", "length", "format"}
    assert rows["control"].limit == ">= 0.90" and rows["control"].status == "ok"
    assert rows["swap"].limit == ">= 0.75"
    assert rows["format"].limit == "<= 0.020"
    assert rows["length"].limit.startswith("> 0.450")
    assert rows["control"].value == content.number(report.stats["control_catch_rate"])


def test_missing_guardrail_evidence_shows_the_minimum_needed(settings):
    no_controls = simulate.simulate_evidence(400, simulate.Scenario(mu=0.6), seed=2)

    report = content.build(no_controls, settings, name="run", source="test")

    control = next(row for row in content.guardrail_rows(report) if row.name == "control")
    assert report.reason == "InsufficientControls"
    assert control.status == "insufficient"
    assert control.limit == "at least 10 controls"


def test_json_form_carries_the_decision_stats_unchanged(passing_records, settings):
    report = content.build(passing_records, dataclasses.replace(settings, margin=0.1), name="run", source="test")

    data = report.to_dict()

    assert data["stats"] is report.stats
    assert data["settings"]["margin"] == 0.1 and data["settings"]["bets"] == list(settings.bets)
    assert data["scores"]["values"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert data["verdict"] == report.verdict

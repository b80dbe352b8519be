"""`assay top --output focus`: spend by route over the window as FinOps FOCUS 1.0 CSV, read with the csv module."""

from __future__ import annotations

import csv
import io
import json

import pytest
from promstub import FakePrometheus, vector

from assay.spend import command, focus, pareto

SPEND = 'sum by (requested_model) (increase(litellm_spend_metric_total{tag_assay_watch!="true"}[1d]))'
REQUESTS = 'sum by (requested_model) (increase(litellm_proxy_total_requests_metric_total{tag_assay_watch!="true"}[1d]))'
# 2026-04-11 06:00 UTC
APRIL_11 = 1775887200.0


def export(fake: FakePrometheus, *args: str) -> tuple[int, list[dict[str, str]], str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--prometheus-url", fake.url, "--no-cluster", "--window", "1d", "--at", str(APRIL_11), "-o", "focus"]
    code = command.main([*argv, *args], stdout=out, stderr=err, env={})
    reader = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    rows = list(reader)
    if code == 0:
        assert tuple(reader.fieldnames or ()) == focus.COLUMNS
    return code, rows, err.getvalue()


def test_one_usage_row_per_route_with_the_window_as_the_charge_period(fake_prometheus: FakePrometheus):
    fake_prometheus.answer(SPEND, vector(({"requested_model": "support"}, 1.43924), ({"requested_model": "faq"}, 0.25)))
    fake_prometheus.answer(REQUESTS, vector(({"requested_model": "support"}, 17.0)))
    code, rows, err = export(fake_prometheus)
    assert (code, err) == (0, "")
    support, faq = rows
    assert support["BilledCost"] == support["EffectiveCost"] == "1.43924" and support["BillingCurrency"] == "USD"
    assert (support["ChargePeriodStart"], support["ChargePeriodEnd"]) == (
        "2026-04-10T06:00:00Z",
        "2026-04-11T06:00:00Z",
    )
    assert (support["ChargeCategory"], support["ChargeFrequency"], support["ChargeClass"]) == (
        "Usage",
        "Usage-Based",
        "",
    )
    assert (support["ServiceCategory"], support["ServiceName"]) == ("AI and Machine Learning", "LiteLLM")
    assert support["ResourceId"] == support["ResourceName"] == "support"
    assert (support["ConsumedQuantity"], support["ConsumedUnit"]) == ("17", "Requests")
    assert json.loads(support["Tags"]) == {"assay/route": "support"}
    assert (faq["BilledCost"], faq["ConsumedQuantity"], faq["ConsumedUnit"]) == ("0.25", "", ""), "no requests: null"
    assert support["x_Outcomes"] == support["x_OutcomeName"] == ""
    assert "support" in support["ChargeDescription"] and "1d" in support["ChargeDescription"]
    assert [float(a["time"]) for a in fake_prometheus.asked] == [APRIL_11] * 2, "evaluated at the period's end"


def test_by_feature_the_group_is_a_tag_not_a_resource(fake_prometheus: FakePrometheus):
    by_feature = 'sum by (metadata_feature) (increase(litellm_spend_metric_total{tag_assay_watch!="true"}[1d]))'
    fake_prometheus.answer(by_feature, vector(({"metadata_feature": "chat"}, 3.0), ({}, 0.00000042)))
    code, rows, _ = export(fake_prometheus, "--by", "feature")
    chat, unlabelled = rows
    assert code == 0 and json.loads(chat["Tags"]) == {"assay/feature": "chat"} and chat["ResourceId"] == ""
    assert unlabelled["Tags"] == "" and unlabelled["BilledCost"] == "0.00000042", "no exponent in a decimal"


def test_the_outcomes_of_a_route_go_in_x_columns(fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch):
    fake_prometheus.answer(SPEND, vector(({"requested_model": "support"}, 36.0)))
    fake_prometheus.answer("sum(increase(tickets_resolved_total[1d]))", vector(({}, 90.0)))
    outcome = {"name": "resolved ticket", "query": "sum(increase(tickets_resolved_total[$window]))"}
    spec = {"promptType": "support", "gateway": {"kind": "LiteLLMConfigMap"}, "outcome": outcome}
    found = [{"metadata": {"namespace": "shop", "name": "support-policy"}, "spec": spec, "status": {}}]
    monkeypatch.setattr(command.cluster, "list_objects", lambda kind, namespace: found)
    out = io.StringIO()
    argv = ["--prometheus-url", fake_prometheus.url, "-n", "shop", "--window", "1d", "--at", str(APRIL_11)]
    assert command.main([*argv, "-o", "focus"], stdout=out, stderr=io.StringIO(), env={}) == 0
    (row,) = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    assert (row["x_OutcomeName"], row["x_Outcomes"]) == ("resolved ticket", "90")
    assert json.loads(row["Tags"]) == {"assay/route": "support", "assay/policies": "shop/support-policy"}


def test_forecast_does_not_apply_to_the_export(fake_prometheus: FakePrometheus, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        command.main(["--prometheus-url", fake_prometheus.url, "-o", "focus", "--forecast"], env={})
    assert exited.value.code == 2 and "--forecast does not apply" in capsys.readouterr().err


def test_no_spend_series_is_an_error_not_an_empty_export(fake_prometheus: FakePrometheus):
    code, rows, err = export(fake_prometheus)
    assert (code, rows) == (command.EXIT_FAILED, []) and "no series for" in err


@pytest.mark.parametrize(
    ("window", "seconds"), [("30d", 30 * 86400), ("1h30m", 5400), ("6003ms", 6.003), ("1w", 604800), ("90s", 90)]
)
def test_prometheus_durations_in_seconds(window: str, seconds: float):
    assert focus.duration_seconds(window) == pytest.approx(seconds)


def test_a_window_that_is_not_a_duration_is_refused():
    with pytest.raises(ValueError):
        focus.duration_seconds("a month")


def test_csv_quotes_what_needs_quoting():
    row = pareto.rank({'odd,"route"': 1.0})
    parsed = list(csv.reader(io.StringIO(focus.csv_text(row, by="route", window="1d", at=APRIL_11, source="promql"))))
    assert parsed[1][focus.COLUMNS.index("ResourceId")] == 'odd,"route"'
    assert parsed[1][focus.COLUMNS.index("ServiceName")] == "LLM gateway"

"""`assay top` against a stand-in Prometheus: the ranked table, JSON, and errors that are never an empty table."""

from __future__ import annotations

import io
import json
import pathlib

import pytest
from promstub import FakePrometheus, vector

from assay.spend import command

SPEND = 'sum by (requested_model) (increase(litellm_spend_metric_total{tag_assay_watch!="true"}[30d]))'
REQUESTS = (
    'sum by (requested_model) (increase(litellm_proxy_total_requests_metric_total{tag_assay_watch!="true"}[30d]))'
)
# 2026-04-11 06:00 UTC: ten complete days of April.
APRIL_11 = 1775887200.0


def top(fake: FakePrometheus, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = command.main(["--prometheus-url", fake.url, "--no-cluster", *args], stdout=out, stderr=err, env=env or {})
    return code, out.getvalue(), err.getvalue()


def routes(*pairs: tuple[str, float]) -> dict:
    return vector(*(({"requested_model": name}, value) for name, value in pairs))


def test_top_ranks_routes_by_spend_with_cumulative_share_and_the_80_percent_cut(fake_prometheus: FakePrometheus):
    fake_prometheus.answer(SPEND, routes(("faq", 12.5), ("support", 70.0), ("tags", 5.0), ("summaries", 12.5)))
    fake_prometheus.answer(REQUESTS, routes(("faq", 100), ("support", 1000), ("tags", 50), ("summaries", 125)))
    code, out, err = top(fake_prometheus)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:7] == ["#", "ROUTE", "SPEND", "30d", "SHARE", "CUM", "REQUESTS"]
    assert lines[1].split()[:5] == ["1", "support", "$70.00", "70.0%", "70.0%"]
    assert lines[2].split()[:5] == ["2", "faq", "$12.50", "12.5%", "82.5%"]
    assert lines[3] == "---- 80% of spend above this line ----"
    assert "$0.070000" in lines[1], "cost per request"
    assert "2 of 4 routes hold 80% of $100.00 spent over 30d" in out


def test_top_as_json_for_scripts_with_the_month_end_forecast(fake_prometheus: FakePrometheus):
    fake_prometheus.default = (200, routes(("support", 10.0)))  # every day of April so far: $10, today as well
    code, out, _ = top(fake_prometheus, "--output", "json", "--forecast", "--at", str(APRIL_11))
    assert code == 0
    (row,) = json.loads(out)["rows"]
    assert row["route"] == "support" and row["inHead"] is True and row["cumulativeShare"] == 1.0
    month = row["forecast"]
    assert month["method"] == "daily-mean-t" and month["spentSoFar"] == 110.0
    assert month["monthEnd"] == 110.0 + 19.75 * 10.0 and month["low"] == month["high"] == month["monthEnd"]
    assert month["leftOnTable"] == 0.0, "no qualified candidate: nothing left on the table"


def test_top_by_feature_reads_the_litellm_metadata_label(fake_prometheus: FakePrometheus):
    by_feature = 'sum by (metadata_feature) (increase(litellm_spend_metric_total{tag_assay_watch!="true"}[7d]))'
    fake_prometheus.answer(by_feature, vector(({"metadata_feature": "chat"}, 3.0), ({}, 1.0)))
    code, out, _ = top(fake_prometheus, "--by", "feature", "--window", "7d")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["#", "FEATURE"]
    assert "(none)" in out, "spend without the label is shown, not dropped"


def test_prometheus_down_is_an_error_and_a_non_zero_exit_not_an_empty_table():
    out, err = io.StringIO(), io.StringIO()
    code = command.main(["--prometheus-url", "http://127.0.0.1:9", "--no-cluster"], stdout=out, stderr=err, env={})
    assert code == command.EXIT_FAILED and out.getvalue() == ""
    assert "is Prometheus running at http://127.0.0.1:9" in err.getvalue()


def test_no_spend_series_is_an_error_naming_the_query(fake_prometheus: FakePrometheus):
    code, out, err = top(fake_prometheus)
    assert code == command.EXIT_FAILED and out == ""
    assert "no series for" in err and "litellm_spend_metric_total" in err


def test_promql_prometheus_refuses_is_reported_with_its_reason(fake_prometheus: FakePrometheus):
    bad = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unclosed left parenthesis"}
    fake_prometheus.answer("sum((cost[30d]", bad, status=400)
    code, _, err = top(fake_prometheus, "--source", "promql", "--promql", "sum((cost[$window]")
    assert code == command.EXIT_FAILED
    assert "bad_data" in err and "unclosed left parenthesis" in err


def test_the_token_comes_from_a_file_or_the_environment_and_is_never_printed(
    fake_prometheus: FakePrometheus, tmp_path: pathlib.Path
):
    token_file = tmp_path / "token"
    token_file.write_text("tok-from-file\n")
    fake_prometheus.default = (403, {"status": "error", "error": "forbidden"})
    code, out, err = top(fake_prometheus, "--token-file", str(token_file))
    assert fake_prometheus.headers[-1]["Authorization"] == "Bearer tok-from-file"
    assert code == command.EXIT_FAILED and "tok-from-file" not in out + err
    top(fake_prometheus, env={command.ENV_TOKEN: "tok-from-env"})
    assert fake_prometheus.headers[-1]["Authorization"] == "Bearer tok-from-env"


def test_the_url_comes_from_the_environment(fake_prometheus: FakePrometheus):
    fake_prometheus.answer(SPEND, routes(("support", 1.0)))
    out = io.StringIO()
    code = command.main(["--no-cluster"], stdout=out, stderr=io.StringIO(), env={command.ENV_URL: fake_prometheus.url})
    assert code == 0 and "support" in out.getvalue()


RESOLVED = "sum(increase(tickets_resolved_total[$window]))"


def with_policies(monkeypatch: pytest.MonkeyPatch, *policies: dict) -> None:
    """RoutePolicies as the API server would list them, without a cluster."""
    monkeypatch.setattr(command.cluster, "list_objects", lambda kind, namespace: list(policies))
    monkeypatch.setattr(command.cluster, "current_namespace", lambda: "shop")


def policy(name: str, route: str, *, outcome: dict | None = None) -> dict:
    spec: dict = {"promptType": route, "gateway": {"kind": "LiteLLMConfigMap"}}
    if outcome:
        spec["outcome"] = outcome
    return {"metadata": {"namespace": "shop", "name": name}, "spec": spec, "status": {}}


def top_with_cluster(fake: FakePrometheus, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = command.main(["--prometheus-url", fake.url, *args], stdout=out, stderr=err, env={})
    return code, out.getvalue(), err.getvalue()


def test_a_policy_with_spec_outcome_shows_its_outcomes_and_the_cost_per_outcome(
    fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
):
    fake_prometheus.answer(SPEND, routes(("support", 36.0), ("faq", 4.0)))
    fake_prometheus.answer(REQUESTS, routes(("support", 400), ("faq", 100)))
    fake_prometheus.answer(
        "sum(increase(tickets_resolved_total[30d]))", vector(({"queue": "a"}, 80.0), ({"queue": "b"}, 10.0))
    )
    outcome = {"name": "resolved ticket", "query": RESOLVED}
    with_policies(monkeypatch, policy("support-policy", "support", outcome=outcome), policy("faq-policy", "faq"))
    code, out, err = top_with_cluster(fake_prometheus)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[-2:] == ["OUTCOMES", "USD/OUTCOME"]
    assert lines[1].split()[-4:] == ["90", "(resolved", "ticket)", "$0.400000"], "the series summed; $36 / 90"
    assert lines[3].split()[-2:] == ["-", "-"], "faq's policy counts no outcome"
    code, out, _ = top_with_cluster(fake_prometheus, "--output", "json")
    rows = {row["route"]: row for row in json.loads(out)["rows"]}
    (support,) = rows["support"]["outcomes"]
    assert support == {
        "name": "resolved ticket",
        "query": RESOLVED,
        "policies": ["shop/support-policy"],
        "outcomes": 90.0,
        "known": True,
        "costPerOutcome": 0.4,
    }
    assert rows["faq"]["outcomes"] == []
    assert [a["query"] for a in fake_prometheus.asked].count("sum(increase(tickets_resolved_total[30d]))") == 2


def test_an_outcome_query_with_no_series_is_unknown_never_zero_and_the_spend_stands(
    fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
):
    fake_prometheus.answer(SPEND.replace("[30d]", "[7d]"), routes(("support", 36.0)))
    with_policies(monkeypatch, policy("support-policy", "support", outcome={"name": "ticket", "query": RESOLVED}))
    code, out, err = top_with_cluster(fake_prometheus, "--window", "7d")
    assert code == 0
    assert "outcomes of shop/support-policy unknown: no series for spec.outcome.query" in err
    assert "tickets_resolved_total[7d]" in err, "the window filled in"
    assert out.splitlines()[1].split()[1:3] == ["support", "$36.00"]
    assert out.splitlines()[1].split()[-3:] == ["unknown", "(ticket)", "-"]
    code, out, _ = top_with_cluster(fake_prometheus, "--window", "7d", "--output", "json")
    (counted,) = json.loads(out)["rows"][0]["outcomes"]
    assert (counted["outcomes"], counted["known"], counted["costPerOutcome"]) == (None, False, None)


def test_zero_outcomes_are_zero_with_no_cost_per_outcome(
    fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
):
    fake_prometheus.answer(SPEND, routes(("support", 36.0)))
    fake_prometheus.answer("sum(increase(tickets_resolved_total[30d]))", vector(({}, 0.0)))
    with_policies(monkeypatch, policy("support-policy", "support", outcome={"name": "ticket", "query": RESOLVED}))
    code, out, _ = top_with_cluster(fake_prometheus, "--output", "json")
    (counted,) = json.loads(out)["rows"][0]["outcomes"]
    assert code == 0 and (counted["outcomes"], counted["known"], counted["costPerOutcome"]) == (0.0, True, None)


def test_an_outcome_query_prometheus_refuses_is_an_error_naming_the_policy(
    fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
):
    fake_prometheus.answer(SPEND, routes(("support", 36.0)))
    bad = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected right parenthesis"}
    fake_prometheus.answer("sum(increase(tickets[30d])))", bad, status=400)
    outcome = {"name": "ticket", "query": "sum(increase(tickets[$window])))"}
    with_policies(monkeypatch, policy("support-policy", "support", outcome=outcome))
    code, out, err = top_with_cluster(fake_prometheus)
    assert (code, out) == (command.EXIT_FAILED, "")
    assert "spec.outcome.query of shop/support-policy" in err and "bad_data" in err


def test_policies_sharing_an_outcome_query_are_read_once(
    fake_prometheus: FakePrometheus, monkeypatch: pytest.MonkeyPatch
):
    fake_prometheus.answer(SPEND, routes(("support", 30.0)))
    fake_prometheus.answer("sum(increase(tickets_resolved_total[30d]))", vector(({}, 10.0)))
    outcome = {"name": "ticket", "query": RESOLVED}
    with_policies(monkeypatch, policy("a", "support", outcome=outcome), policy("b", "support", outcome=outcome))
    code, out, _ = top_with_cluster(fake_prometheus, "--output", "json")
    (counted,) = json.loads(out)["rows"][0]["outcomes"]
    assert code == 0 and counted["policies"] == ["shop/a", "shop/b"] and counted["costPerOutcome"] == 3.0
    assert [a["query"] for a in fake_prometheus.asked].count("sum(increase(tickets_resolved_total[30d]))") == 1


def test_top_as_an_html_page_escapes_route_names_and_draws_the_pareto_cut(fake_prometheus: FakePrometheus):
    hostile = "<script>alert(1)</script>"
    fake_prometheus.answer(SPEND, routes(("support", 70.0), (hostile, 20.0), ("faq", 10.0)))
    fake_prometheus.answer(REQUESTS, routes(("support", 1000), (hostile, 10), ("faq", 100)))
    code, out, err = top(fake_prometheus, "--output", "html")
    assert (code, err) == (0, "")
    assert out.startswith("<!DOCTYPE html>") and "<title>Spend by route</title>" in out
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert out.index("support") < out.index("80% of spend above this line") < out.index("faq")
    assert "2 of 3 routes hold 80% of $100.00 spent over 30d" in out

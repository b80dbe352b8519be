"""`assay top` against a stand-in Prometheus: the ranked table, JSON, and errors that are never an empty table."""

from __future__ import annotations

import io
import json
import pathlib

from promstub import FakePrometheus, vector

from assay.spend import command

SPEND = "sum by (requested_model) (increase(litellm_spend_metric_total[30d]))"
REQUESTS = "sum by (requested_model) (increase(litellm_proxy_total_requests_metric_total[30d]))"
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
    by_feature = "sum by (metadata_feature) (increase(litellm_spend_metric_total[7d]))"
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

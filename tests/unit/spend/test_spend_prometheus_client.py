"""The Prometheus client: an answer is samples; every failure is its own error, never an empty (zero) answer."""

from __future__ import annotations

import pytest
from promstub import FakePrometheus, vector

from assay import httpclient
from assay.spend import prometheus

FAST = httpclient.RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


def client(fake: FakePrometheus, **kwargs: object) -> prometheus.PrometheusClient:
    return prometheus.PrometheusClient(fake.url, retry=FAST, **kwargs)  # type: ignore[arg-type]


def test_an_instant_vector_becomes_samples_with_labels_and_the_time_is_sent(fake_prometheus: FakePrometheus):
    fake_prometheus.answer("up", vector(({"job": "litellm"}, 1), ({"job": "assay"}, 0)))
    with client(fake_prometheus) as prom:
        samples = prom.query("up", at=1700000123.5)
    assert [(s.labels["job"], s.value) for s in samples] == [("litellm", 1.0), ("assay", 0.0)]
    assert fake_prometheus.asked[-1] == {"query": "up", "time": "1700000123.500"}


def test_bad_promql_is_a_bad_query_error_with_prometheus_reason(fake_prometheus: FakePrometheus):
    refusal = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "(" '}
    fake_prometheus.answer("sum((", refusal, status=400)
    with client(fake_prometheus) as prom, pytest.raises(prometheus.BadQuery) as caught:
        prom.query("sum((")
    assert caught.value.error_type == "bad_data"
    assert "parse error" in str(caught.value) and "sum((" in str(caught.value)
    assert len(fake_prometheus.asked) == 1, "a refused query is not retried"


def test_a_5xx_is_retried_then_reported_unreachable(fake_prometheus: FakePrometheus):
    fake_prometheus.default = (503, {"status": "error", "errorType": "unavailable", "error": "starting"})
    with client(fake_prometheus) as prom, pytest.raises(prometheus.PrometheusUnreachable, match="HTTP 503"):
        prom.query("up")
    assert len(fake_prometheus.asked) == FAST.max_attempts


def test_a_prometheus_that_is_down_is_unreachable_not_zero():
    down = prometheus.PrometheusClient("http://127.0.0.1:9", retry=FAST)
    with down as prom, pytest.raises(prometheus.PrometheusUnreachable, match=r"is Prometheus running at http://127\.0"):
        prom.query("up")


def test_no_series_is_an_error_when_a_series_is_needed(fake_prometheus: FakePrometheus):
    with client(fake_prometheus) as prom:
        assert prom.query("absent_metric") == []
        with pytest.raises(prometheus.NoSeries, match="absent_metric"):
            prom.query_series("absent_metric")


def test_the_bearer_token_is_sent_and_never_in_a_message(fake_prometheus: FakePrometheus):
    fake_prometheus.default = (401, {"status": "error", "error": "unauthorized"})
    with client(fake_prometheus, bearer_token="s3cret-token") as prom, pytest.raises(prometheus.PrometheusError) as e:
        prom.query("up")
    assert fake_prometheus.headers[-1]["Authorization"] == "Bearer s3cret-token"
    assert "s3cret" not in str(e.value) and "bearer token" in str(e.value)


def test_nan_values_are_dropped_and_scalars_read():
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "NaN"]}]}}
    assert prometheus.parse_vector(body) == []
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [0, "2.5"]}}
    assert prometheus.parse_vector(scalar) == [prometheus.Sample({}, 2.5)]


@pytest.mark.parametrize("window", ["1d", "7d", "30d", "3600s", "1h30m", "61234ms"])
def test_prometheus_durations_are_accepted(window: str):
    assert prometheus.check_duration(window) == window


@pytest.mark.parametrize("window", ["", "1 day", "30", "1d]) or vector(1", "-1d"])
def test_anything_else_is_refused_before_it_reaches_promql(window: str):
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        prometheus.check_duration(window)

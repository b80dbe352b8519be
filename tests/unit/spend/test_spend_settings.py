"""How the operator is told where spend is read: `assay operator --prometheus-url ... --prometheus-token-file ...`
(the chart sets ASSAY_PROMETHEUS_URL and a mounted token file), and the token never stored or shown."""

from __future__ import annotations

import pytest

from assay import cli
from assay.controllers import runtime
from assay.spend import prometheus


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[runtime.OperatorOptions]:
    seen: list[runtime.OperatorOptions] = []
    monkeypatch.setattr(runtime, "run", seen.append)
    for name in ("ASSAY_PROMETHEUS_URL", "ASSAY_PROMETHEUS_TOKEN_FILE", "ASSAY_SPEND_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    return seen


def test_the_operator_reads_no_spend_without_a_prometheus_url(started):
    cli._operator([])
    assert started[0].prometheus is None


def test_the_operator_takes_prometheus_and_the_spend_interval_from_its_environment(started, monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    monkeypatch.setenv("ASSAY_PROMETHEUS_URL", "https://reader@prometheus.monitoring.svc:9090/")
    monkeypatch.setenv("ASSAY_PROMETHEUS_TOKEN_FILE", str(token))
    monkeypatch.setenv("ASSAY_SPEND_INTERVAL", "120")
    cli._operator([])
    options = started[0]
    assert options.prometheus == prometheus.Settings("https://reader@prometheus.monitoring.svc:9090/", str(token))
    assert options.spend_interval == 120.0
    assert options.prometheus.host == "prometheus.monitoring.svc:9090"
    assert "s3cret" not in repr(options), "the token is read when a client is made, never kept in the options"


def test_flags_win_over_the_environment(started, monkeypatch):
    monkeypatch.setenv("ASSAY_PROMETHEUS_URL", "http://from-env:9090")
    cli._operator(["--prometheus-url", "http://from-flag:9090", "--spend-interval", "60"])
    assert started[0].prometheus == prometheus.Settings("http://from-flag:9090", None)
    assert started[0].spend_interval == 60.0


def test_a_non_positive_spend_interval_is_refused(started):
    with pytest.raises(SystemExit):
        cli._operator(["--spend-interval", "0"])


def test_the_bearer_token_comes_from_its_file_first_then_the_environment(tmp_path):
    token = tmp_path / "token"
    token.write_text("from-file\n")
    env = {"ASSAY_PROMETHEUS_TOKEN": "from-env", "ASSAY_PROMETHEUS_TOKEN_FILE": str(token)}
    assert prometheus.read_bearer_token(env) == "from-file"
    assert prometheus.read_bearer_token({"ASSAY_PROMETHEUS_TOKEN": "from-env"}) == "from-env"
    assert prometheus.read_bearer_token({}) is None


def test_an_unreadable_token_file_names_the_file_not_the_token(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(prometheus.PrometheusError, match=str(missing)):
        prometheus.read_bearer_token({}, path=str(missing))

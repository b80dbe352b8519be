"""Monitoring: the ServiceMonitor and PrometheusRule appear only where the Prometheus Operator's API exists, the
rules and the Grafana dashboard query only metrics assay exports, and the alerts fire when they should
(checked with promtool's rule unit tests when Debian's `prometheus` package is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import yaml
from chart_harness import CHART, CI_VALUES, of_kind, one, render
from prometheus_client import metrics as prometheus_metrics

import realparts
from assay import metrics

ASSAY_NAME = re.compile(r"\bassay_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported_series_names() -> set[str]:
    """Sample names as Prometheus stores them: counters end in _total, histograms in _bucket/_sum/_count."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, prometheus_metrics.MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _rule_groups(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return one(docs, "PrometheusRule")["spec"]["groups"]


def test_monitoring_objects_render_only_where_the_prometheus_operator_api_exists(helm):
    monitoring = [CI_VALUES["monitoring-values"]]
    without = render(helm, values_files=monitoring)
    assert of_kind(without, "ServiceMonitor") == of_kind(without, "PrometheusRule") == []
    with_api = render(helm, values_files=monitoring, api_versions=["monitoring.coreos.com/v1"])
    monitor = one(with_api, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    service = next(s for s in of_kind(with_api, "Service") if s["metadata"]["name"] == "assay")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert one(with_api, "PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_monitoring_is_off_by_default(default):
    assert {d["kind"] for d in default}.isdisjoint({"ServiceMonitor", "PrometheusRule", "ConfigMap"})


def test_alert_rules_query_only_metrics_assay_exports(rendered):
    exported = _exported_series_names()
    groups = _rule_groups(rendered["monitoring-values"])
    rules = [rule for group in groups for rule in group["rules"]]
    assert {"AssayRouteRolledBack", "AssayReconcileErrors", "AssayGatewayWriteFailures"} <= {r["alert"] for r in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        unknown = set(ASSAY_NAME.findall(rule["expr"])) - exported
        assert not unknown, f"{rule['alert']} queries {unknown}, which assay.metrics does not export"


def test_example_drift_alert_carries_the_labels_a_route_policy_selects(rendered):
    groups = {group["name"]: group for group in _rule_groups(rendered["monitoring-values"])}
    (drift,) = groups["assay.example-drift"]["rules"]
    assert drift["alert"] == "LLMRouteQualityDrift"
    assert drift["labels"]["route"] == "{{ $labels.requested_model }}"
    example = yaml.safe_load((CHART.parents[1] / "examples" / "routepolicy-litellm.yaml").read_text())
    assert example["spec"]["rollback"]["alertSelector"]["matchLabels"]["alertname"] == drift["alert"]


def test_grafana_dashboard_ships_in_a_sidecar_labelled_configmap(rendered):
    config_map = one(rendered["monitoring-values"], "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["assay.json"]) == json.loads((CHART / "dashboards" / "assay.json").read_text())


def test_grafana_dashboard_queries_only_metrics_assay_exports():
    dashboard = json.loads((CHART / "dashboards" / "assay.json").read_text())
    exported = _exported_series_names()
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queried.update(ASSAY_NAME.findall(target["expr"]))
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"unknown metrics: {queried - exported}"
    # Every metric assay exports is on the dashboard (histogram: its buckets).
    assert {name for name in exported if not name.endswith(("_sum", "_count"))} <= queried


def _promtool() -> str:
    promtool = shutil.which("promtool")
    realparts.require("promtool", promtool, "run hack/debian-packages.sh as root (Debian's prometheus)")
    return promtool


def test_prometheus_rules_pass_promtool_check(rendered, tmp_path):
    promtool = _promtool()
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _rule_groups(rendered["monitoring-values"])}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_on_rollbacks_and_drift_and_stay_quiet_otherwise(rendered, tmp_path):
    """promtool replays series minute by minute: a first-ever rollback, a later one, and a failing route."""
    promtool = _promtool()
    groups = _rule_groups(rendered["monitoring-values"])
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    descriptions = {rule["alert"]: rule["annotations"]["description"] for g in groups for rule in g["rules"]}

    def rolled_back(reason: str) -> dict[str, Any]:
        return {
            "exp_labels": {"severity": "warning", "reason": reason},
            "exp_annotations": {
                "summary": f"assay rolled a route back to its last known good model ({reason}).",
                "description": descriptions["AssayRouteRolledBack"],
            },
        }

    refused = {
        "exp_labels": {"severity": "critical", "outcome": "unauthorized"},
        "exp_annotations": {
            "summary": "assay's alert webhook answered unauthorized to Alertmanager.",
            "description": descriptions["AssayAlertsRefused"],
        },
    }
    drift = {
        "exp_labels": {"severity": "warning", "route": "support-summary", "requested_model": "support-summary"},
        "exp_annotations": {
            "summary": "Route support-summary fails 10% of requests (threshold 0.05).",
            "description": descriptions["LLMRouteQualityDrift"],
        },
    }
    suite = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # The first alert-driven rollback creates the series at minute 30.
                    {"series": 'assay_rollbacks_total{reason="alert"}', "values": "_x30 1x50"},
                    # A manual rollback is older than the look-back window; another one happens at minute 45.
                    {"series": 'assay_rollbacks_total{reason="manual"}', "values": "1x45 2x35"},
                    # Alertmanager keeps sending a wrong token from minute 20; matched deliveries never alert.
                    {"series": 'assay_alerts_received_total{outcome="unauthorized"}', "values": "_x20 1+1x40"},
                    {"series": 'assay_alerts_received_total{outcome="matched"}', "values": "0+1x60"},
                    # 10% of the route's requests fail, against a 5% threshold; another route is healthy.
                    {
                        "series": 'litellm_proxy_total_requests_metric_total{requested_model="support-summary"}',
                        "values": "0+100x30",
                    },
                    {
                        "series": 'litellm_proxy_failed_requests_metric_total{requested_model="support-summary"}',
                        "values": "0+10x30",
                    },
                    {
                        "series": 'litellm_proxy_total_requests_metric_total{requested_model="faq"}',
                        "values": "0+100x30",
                    },
                    {"series": 'litellm_proxy_failed_requests_metric_total{requested_model="faq"}', "values": "0+1x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "AssayRouteRolledBack", "exp_alerts": []},
                    {
                        "eval_time": "32m",
                        "alertname": "AssayRouteRolledBack",
                        "exp_alerts": [rolled_back("alert")],
                    },
                    {"eval_time": "48m", "alertname": "AssayRouteRolledBack", "exp_alerts": [rolled_back("manual")]},
                    {"eval_time": "70m", "alertname": "AssayRouteRolledBack", "exp_alerts": []},
                    {"eval_time": "15m", "alertname": "AssayAlertsRefused", "exp_alerts": []},
                    {"eval_time": "25m", "alertname": "AssayAlertsRefused", "exp_alerts": [refused]},
                    {"eval_time": "3m", "alertname": "LLMRouteQualityDrift", "exp_alerts": []},
                    {"eval_time": "15m", "alertname": "LLMRouteQualityDrift", "exp_alerts": [drift]},
                ],
            }
        ],
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    result = subprocess.run(
        [promtool, "test", "rules", "suite.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

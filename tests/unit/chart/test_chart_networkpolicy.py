"""The operator pods' NetworkPolicy: the webhook port admits only Alertmanager (configurable), metrics only the
configured scrapers, the probe port anyone (the kubelet); no rule admits every pod to the webhook."""

from __future__ import annotations

import re

import pytest
from chart_harness import DEFAULT_VALUES, HelmError, of_kind, one, render

ALERTMANAGER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}},
}
MONITORING_NAMESPACE = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def _ingress_by_port(policy: dict) -> dict[int, list[dict] | None]:
    """port -> the rule's `from` (None: from anywhere); one port per rule."""
    rules = {}
    for rule in policy["spec"]["ingress"]:
        [port] = rule["ports"]
        assert port["protocol"] == "TCP"
        rules[port["port"]] = rule.get("from")
    return rules


def test_by_default_only_alertmanager_reaches_the_webhook_and_the_monitoring_namespace_the_metrics(default):
    policy = one(default, "NetworkPolicy")
    pod_labels = one(default, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"], "egress (apiserver, gateways, models) is not restricted"
    assert _ingress_by_port(policy) == {8443: [ALERTMANAGER], 8080: [MONITORING_NAMESPACE], 8081: None}


def test_the_webhook_peers_and_metrics_scrapers_are_configurable(helm, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "webhook:\n"
        "  port: 9443\n"
        "  networkPolicy:\n"
        "    from:\n"
        "      - namespaceSelector: {matchLabels: {team: observability}}\n"
        "    metricsFrom: []\n"
        "metrics: {port: 9090}\n"
        "health: {port: 9091}\n"
    )
    docs = render(helm, values_files=[*DEFAULT_VALUES, values])
    assert _ingress_by_port(one(docs, "NetworkPolicy")) == {
        9443: [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}],
        9090: None,
        9091: None,
    }


def test_without_the_webhook_the_policy_keeps_only_metrics_and_probes(helm):
    docs = render(helm, values_files=[], set_values=["webhook.enabled=false"])
    assert set(_ingress_by_port(one(docs, "NetworkPolicy"))) == {8080, 8081}


def test_disabled_renders_no_network_policy(helm):
    assert of_kind(render(helm, set_values=["webhook.networkPolicy.enabled=false"]), "NetworkPolicy") == []


def test_an_empty_webhook_peer_list_fails_instead_of_admitting_everyone(helm):
    with pytest.raises(HelmError, match=re.escape("webhook.networkPolicy.from is empty")):
        render(helm, set_values=["webhook.networkPolicy.from=null"])
    with pytest.raises(HelmError, match="/webhook/networkPolicy/from"):
        render(helm, set_values=["webhook.networkPolicy.from={}"])

"""Firing alerts select RoutePolicies by their alertSelector, within the alert's namespace, never by default."""

from __future__ import annotations

from typing import Any

import pytest
from alerts_harness import alert, notification, policy

from assay.alerts import matching, payload
from assay.api import routepolicy


def _alerts(*alerts: dict[str, Any]) -> tuple[payload.Alert, ...]:
    return payload.parse(notification(*alerts)).alerts


def _matched(alerts: tuple[payload.Alert, ...], policies: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(item.namespace, item.name, item.alert_name) for item in matching.match(alerts, policies)]


def test_firing_alert_matches_the_policy_whose_labels_it_carries():
    policies = [
        policy("support-summary", match_labels={"alertname": "JudgeDrift", "route": "support-summary"}),
        policy("billing-qa", match_labels={"alertname": "JudgeDrift", "route": "billing-qa"}),
    ]
    alerts = _alerts(
        alert({"alertname": "JudgeDrift", "route": "support-summary", "namespace": "team-a", "severity": "page"})
    )

    matches = matching.match(alerts, policies)

    assert len(matches) == 1
    found = matches[0]
    assert (found.namespace, found.name, found.uid) == ("team-a", "support-summary", "uid-team-a-support-summary")
    assert found.alert_name == "JudgeDrift"
    assert found.fingerprint == "f00dfeedcafe0001"
    assert found.starts_at == alerts[0].starts_at


def test_resolved_alerts_never_match():
    policies = [policy("support-summary", match_labels={"alertname": "JudgeDrift"})]

    alerts = _alerts(alert({"alertname": "JudgeDrift", "namespace": "team-a"}, status="resolved"))

    assert matching.match(alerts, policies) == []


def test_policy_without_alert_selector_never_matches():
    policies = [policy("manual-only", with_selector=False)]

    assert matching.match(_alerts(alert({"alertname": "JudgeDrift", "namespace": "team-a"})), policies) == []


@pytest.mark.parametrize(
    "selector",
    [
        {},
        {"matchLabels": {}, "matchExpressions": []},
        {"matchExpressions": [{"key": "severity", "operator": "NotIn", "values": ["info"]}]},
        {"matchExpressions": [{"key": "silenced", "operator": "DoesNotExist"}]},
    ],
    ids=["empty", "empty-lists", "only-NotIn", "only-DoesNotExist"],
)
def test_selector_that_pins_nothing_matches_nothing(selector: dict[str, Any]):
    unsafe = policy("everything")
    unsafe["spec"]["rollback"]["alertSelector"] = selector

    alerts = _alerts(alert({"alertname": "JudgeDrift", "namespace": "team-a", "severity": "page"}))

    assert matching.match(alerts, [unsafe]) == []


def test_alert_with_namespace_label_matches_only_policies_of_that_namespace():
    policies = [
        policy("support-summary", namespace="team-a", match_labels={"alertname": "JudgeDrift"}),
        policy("support-summary", namespace="team-b", match_labels={"alertname": "JudgeDrift"}),
    ]

    alerts = _alerts(alert({"alertname": "JudgeDrift", "namespace": "team-b"}))

    assert _matched(alerts, policies) == [("team-b", "support-summary", "JudgeDrift")]


def test_alert_without_namespace_label_matches_no_policy_that_did_not_opt_in():
    policies = [
        policy("support-summary", namespace="team-a", match_labels={"route": "support-summary"}),
        policy("billing-qa", namespace="team-b", match_labels={"route": "billing-qa"}),
        policy("anything", namespace="team-c", match_expressions=[{"key": "alertname", "operator": "Exists"}]),
    ]

    alerts = _alerts(alert({"alertname": "JudgeDrift", "route": "billing-qa"}))

    assert _matched(alerts, policies) == []


def test_alert_without_namespace_label_matches_an_opted_in_policy_by_its_selector():
    opted_in = policy("billing-qa", namespace="team-b", match_labels={"route": "billing-qa"})
    opted_in["spec"]["rollback"]["matchAlertsWithoutNamespace"] = True
    policies = [
        policy("support-summary", namespace="team-a", match_labels={"route": "support-summary"}),
        opted_in,
        policy("billing-qa", namespace="team-c", match_labels={"route": "billing-qa"}),
    ]

    assert _matched(_alerts(alert({"alertname": "JudgeDrift", "route": "billing-qa"})), policies) == [
        ("team-b", "billing-qa", "JudgeDrift")
    ]
    # The opt-in widens nothing for alerts that do carry a namespace.
    assert _matched(_alerts(alert({"alertname": "X", "route": "billing-qa", "namespace": "team-c"})), policies) == [
        ("team-c", "billing-qa", "X")
    ]


def test_one_alert_may_roll_back_several_policies_and_several_alerts_one_policy():
    policies = [
        policy("a", match_labels={"alertname": "JudgeDrift"}),
        policy("b", match_expressions=[{"key": "alertname", "operator": "In", "values": ["JudgeDrift", "Other"]}]),
    ]
    alerts = _alerts(
        alert({"alertname": "JudgeDrift", "namespace": "team-a"}, fingerprint="0000000000000001"),
        alert({"alertname": "Other", "namespace": "team-a"}, fingerprint="0000000000000002"),
    )

    assert _matched(alerts, policies) == [
        ("team-a", "a", "JudgeDrift"),
        ("team-a", "b", "JudgeDrift"),
        ("team-a", "b", "Other"),
    ]


def _selector(**fields: Any) -> routepolicy.AlertSelector:
    return routepolicy.AlertSelector.model_validate(fields)


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ({"key": "tier", "operator": "In", "values": ["gold", "silver"]}, {"tier": "gold"}, True),
        ({"key": "tier", "operator": "In", "values": ["gold", "silver"]}, {"tier": "bronze"}, False),
        ({"key": "tier", "operator": "In", "values": ["gold"]}, {}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["bronze"]}, {"tier": "gold"}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["bronze"]}, {"tier": "bronze"}, False),
        # Kubernetes: NotIn also holds when the label is absent.
        ({"key": "tier", "operator": "NotIn", "values": ["bronze"]}, {}, True),
        ({"key": "tier", "operator": "Exists"}, {"tier": ""}, True),
        ({"key": "tier", "operator": "Exists"}, {}, False),
        ({"key": "tier", "operator": "DoesNotExist"}, {}, True),
        ({"key": "tier", "operator": "DoesNotExist"}, {"tier": "gold"}, False),
    ],
)
def test_match_expressions_follow_kubernetes_label_selector_semantics(
    expression: dict[str, Any], labels: dict[str, str], expected: bool
):
    # matchLabels pins the alert so the expression alone decides.
    selector = _selector(matchLabels={"alertname": "JudgeDrift"}, matchExpressions=[expression])

    assert matching.selects(selector, {"alertname": "JudgeDrift", **labels}) is expected


def test_all_requirements_must_hold():
    selector = _selector(
        matchLabels={"alertname": "JudgeDrift", "route": "support-summary"},
        matchExpressions=[
            {"key": "severity", "operator": "In", "values": ["page"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    )
    labels = {"alertname": "JudgeDrift", "route": "support-summary", "severity": "page"}

    assert matching.selects(selector, labels)
    assert not matching.selects(selector, {**labels, "route": "billing-qa"})
    assert not matching.selects(selector, {**labels, "severity": "ticket"})
    assert not matching.selects(selector, {**labels, "canary": "true"})
    assert not matching.selects(selector, {"route": "support-summary", "severity": "page"})


@pytest.mark.parametrize(
    "expression",
    [
        {"key": "tier", "operator": "In", "values": []},
        {"key": "tier", "operator": "NotIn"},
        {"key": "tier", "operator": "Exists", "values": ["gold"]},
    ],
)
def test_requirements_kubernetes_would_reject_raise_selector_error(expression: dict[str, Any]):
    selector = _selector(matchLabels={"alertname": "JudgeDrift"}, matchExpressions=[expression])

    with pytest.raises(matching.SelectorError, match=r"matchExpressions\[0\]\.values"):
        matching.selects(selector, {"alertname": "JudgeDrift", "tier": "gold"})


@pytest.mark.parametrize(
    "selector",
    [
        {"matchLabels": {"alertname": "JudgeDrift"}, "matchExpressions": [{"key": "t", "operator": "In"}]},
        {"matchLabels": {"alertname": "JudgeDrift"}, "matchExpressions": [{"key": "t", "operator": "Near"}]},
        {"matchLabels": ["alertname"]},
    ],
    ids=["In-without-values", "unknown-operator", "matchLabels-list"],
)
def test_unreadable_selector_matches_nothing_and_is_logged(selector: dict[str, Any], caplog: pytest.LogCaptureFixture):
    broken = policy("broken")
    broken["spec"]["rollback"]["alertSelector"] = selector
    healthy = policy("healthy", match_labels={"alertname": "JudgeDrift"})

    alerts = _alerts(alert({"alertname": "JudgeDrift", "namespace": "team-a", "t": "x"}))

    assert _matched(alerts, [broken, healthy]) == [("team-a", "healthy", "JudgeDrift")]
    assert "team-a/broken" in caplog.text
    assert "spec.rollback.alertSelector" in caplog.text


def test_policy_without_uid_is_skipped():
    anonymous = policy("support-summary", match_labels={"alertname": "JudgeDrift"})
    del anonymous["metadata"]["uid"]

    assert matching.match(_alerts(alert({"alertname": "JudgeDrift", "namespace": "team-a"})), [anonymous]) == []

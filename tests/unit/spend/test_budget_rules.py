"""spec.budget rendered as Prometheus alert rules (assay.spend.budget_rules), `assay budget-rules`, and how the
webhook tells budget alerts from drift alerts (assay.alerts.matching). The PromQL itself is checked by the real
Prometheus in tests/integration/test_budget_loop.py."""

from __future__ import annotations

import datetime
import io

import pydantic
import pytest
import yaml

from assay.alerts import matching, payload
from assay.api import routepolicy
from assay.spend import budget_rules, rules_command, sources

SPEC = {
    "promptType": "support",
    "gateway": {"kind": "LiteLLMConfigMap", "configMapRef": {"name": "litellm", "key": "config.yaml"}},
    "baseline": {"model": "gpt-4o"},
    "candidates": [{"name": "mini", "model": "gpt-4o-mini"}],
    "qualification": {
        "endpoint": {"url": "http://llm.example:4000"},
        "dataset": {"configMapRef": {"name": "prompts", "key": "data.jsonl"}},
        "judge": {"model": "judge-model"},
    },
}
BURN = {"factor": 5, "window": "5m", "baseline": "1h", "minUsdPerHour": 2, "for": "1m"}


def spec(budget: dict | None, **changes: object) -> routepolicy.RoutePolicySpec:
    return routepolicy.RoutePolicySpec.model_validate({**SPEC, **changes, "budget": budget})


def test_no_budget_no_rules():
    assert budget_rules.rule_group("shop", "support", spec(None)) is None


def test_litellm_rules_carry_the_labels_the_webhook_matches_and_leave_assay_calls_out():
    group = budget_rules.rule_group("shop", "support", spec({"dailyUsd": 50, "monthlyUsd": 900, "burnRate": BURN}))
    assert group is not None and group["name"] == "assay-budget.shop.support"
    by_key = {rule["labels"][budget_rules.BUDGET_LABEL]: rule for rule in group["rules"]}
    assert set(by_key) == {"daily", "monthly", "burn-rate"}
    for key, rule in by_key.items():
        assert rule["alert"] == budget_rules.ALERTS[key]
        assert rule["labels"]["namespace"] == "shop" and rule["labels"]["routepolicy"] == "support"
        assert 'requested_model="support"' in rule["expr"] and 'tag_assay_watch!="true"' in rule["expr"]
        assert sources.LITELLM_SPEND in rule["expr"]
    assert by_key["daily"]["expr"].endswith("[1d])) > 50") and by_key["daily"]["for"] == "0s"
    assert by_key["monthly"]["expr"].endswith("[30d])) > 900")
    burn = by_key["burn-rate"]
    assert burn["for"] == "1m"
    assert "rate(" in burn["expr"] and "[5m]" in burn["expr"] and "[1h] offset 5m" in burn["expr"]
    assert "> 5 * (" in burn["expr"] and "or vector(0)" in burn["expr"]
    assert f"> {2 / 3600:.6g}" in burn["expr"]


def test_envoy_rules_price_each_model_tokens_from_the_price_table():
    envoy = {"kind": "EnvoyAIGatewayRoute", "routeRef": {"name": "llm"}}
    pricing = [
        {"model": "gpt-4o", "inputPerMillion": 2.5, "outputPerMillion": 10},
        {"model": "gpt-4o-mini", "inputPerMillion": 0.15, "outputPerMillion": 0.6},
    ]
    group = budget_rules.rule_group("shop", "support", spec({"dailyUsd": 10}, gateway=envoy, pricing=pricing))
    assert group is not None
    expr = group["rules"][0]["expr"]
    assert 'gen_ai_response_model="gpt-4o-mini"' in expr and 'gen_ai_token_type="output"' in expr
    assert "* 2.5e-06" in expr and "* 6e-07" in expr and expr.count("or vector(0)") == 4


def test_envoy_rules_refuse_an_unpriced_model():
    envoy = {"kind": "EnvoyAIGatewayRoute", "routeRef": {"name": "llm"}}
    odd = [{"name": "odd", "model": "nobody-prices-this"}]
    with pytest.raises(budget_rules.Unsupported, match="nobody-prices-this"):
        budget_rules.rule_group("shop", "support", spec({"dailyUsd": 10}, gateway=envoy, candidates=odd))


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"dailyUsd": 0}, "dailyUsd"),
        ({"monthlyUsd": -5}, "monthlyUsd"),
        ({"burnRate": {**BURN, "factor": 1}}, "factor"),
        ({"burnRate": {**BURN, "window": "5 minutes"}}, "window"),
        ({"burnRate": {**BURN, "baseline": "1d"}}, "baseline"),
        ({"dailyUsd": 5, "action": "Panic"}, "action"),
    ],
)
def test_bad_budgets_are_refused_naming_the_field(budget, field):
    with pytest.raises(pydantic.ValidationError) as caught:
        spec(budget)
    assert field in str(caught.value)


def test_prometheus_rule_is_owned_by_its_policy():
    body = {"apiVersion": "assay.dev/v1alpha1", "metadata": {"namespace": "shop", "name": "support", "uid": "u-1"}}
    group = budget_rules.rule_group("shop", "support", spec({"dailyUsd": 5}))
    assert group is not None
    rule = budget_rules.prometheus_rule(body, group)
    assert rule["kind"] == "PrometheusRule" and rule["metadata"]["namespace"] == "shop"
    assert rule["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert rule["spec"]["groups"] == [group]


def _policy_file(tmp_path, budget: dict | None, name: str = "support", **changes: object):
    body = {
        "apiVersion": "assay.dev/v1alpha1",
        "kind": "RoutePolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {**SPEC, **changes, **({"budget": budget} if budget else {})},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_budget_rules_command_prints_a_rule_file_for_the_policies_with_a_budget(tmp_path):
    files = [_policy_file(tmp_path, {"dailyUsd": 5}), _policy_file(tmp_path, None, name="nobudget")]
    out, err = io.StringIO(), io.StringIO()
    assert rules_command.main(["-f", files[0], "-f", files[1]], out=out, err=err) == 0
    printed = yaml.safe_load(out.getvalue())
    assert [group["name"] for group in printed["groups"]] == ["assay-budget.shop.support"]
    assert err.getvalue() == ""


def test_budget_rules_command_prometheusrule_format(tmp_path):
    out = io.StringIO()
    rules_command.main(["-f", _policy_file(tmp_path, {"dailyUsd": 5}), "--format", "prometheusrule"], out=out)
    (printed,) = list(yaml.safe_load_all(out.getvalue()))
    assert printed["kind"] == "PrometheusRule" and printed["spec"]["groups"][0]["rules"][0]["alert"]


def test_budget_rules_command_names_a_policy_it_cannot_render(tmp_path):
    envoy = {"kind": "EnvoyAIGatewayRoute", "routeRef": {"name": "llm"}}
    path = _policy_file(tmp_path, {"dailyUsd": 5}, gateway=envoy, candidates=[{"name": "odd", "model": "unpriced-x"}])
    out, err = io.StringIO(), io.StringIO()
    assert rules_command.main(["-f", path], out=out, err=err) == rules_command.EXIT_FAILED
    assert "shop/support: spec.budget:" in err.getvalue() and "unpriced-x" in err.getvalue()


# --- the webhook's side --------------------------------------------------------------------------------------

POLICIES = [
    {"metadata": {"namespace": "shop", "name": "support", "uid": "u-1"}, "spec": {"budget": {"dailyUsd": 5}}},
    {"metadata": {"namespace": "shop", "name": "plain", "uid": "u-2"}, "spec": {}},
    {
        "metadata": {"namespace": "shop", "name": "selecting", "uid": "u-3"},
        "spec": {"rollback": {"alertSelector": {"matchLabels": {"severity": "warning"}}}},
    },
]


def alert(labels: dict[str, str], status: str = "firing") -> payload.Alert:
    return payload.Alert(
        status=status,  # type: ignore[arg-type]
        labels=labels,
        annotations={},
        starts_at=datetime.datetime(2026, 12, 4, 9, 0, tzinfo=datetime.UTC),
        ends_at=None,
        generator_url="",
        fingerprint="abc123",
    )


BUDGET_LABELS = {
    "alertname": "AssayBudgetBurnRate",
    budget_rules.BUDGET_LABEL: "burn-rate",
    "namespace": "shop",
    "routepolicy": "support",
    "severity": "warning",
}


def test_a_budget_alert_matches_its_named_policy_and_never_a_drift_selector():
    alerts = [alert(BUDGET_LABELS)]
    found = matching.budget_matches(alerts, POLICIES)
    assert [(m.name, m.uid, m.trigger, m.firing) for m in found] == [("support", "u-1", "BurnRate", True)]
    assert matching.match(alerts, POLICIES) == [], "a budget alert never rolls back through alertSelector"


def test_resolved_budget_alerts_match_too():
    (found,) = matching.budget_matches([alert(BUDGET_LABELS, status="resolved")], POLICIES)
    assert not found.firing


@pytest.mark.parametrize(
    "labels",
    [
        {**BUDGET_LABELS, "routepolicy": "plain"},  # no spec.budget
        {**BUDGET_LABELS, "namespace": "other"},  # another namespace's policy of the same name
        {**BUDGET_LABELS, budget_rules.BUDGET_LABEL: "weekly"},  # no such trigger
    ],
)
def test_budget_alerts_that_name_no_budgeted_policy_match_nothing(labels):
    assert matching.budget_matches([alert(labels)], POLICIES) == []

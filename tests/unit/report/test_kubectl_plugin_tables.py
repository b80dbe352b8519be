"""`kubectl assay`: the status tables, the promote value it sends, and the commands it offers."""

from __future__ import annotations

import datetime

import pytest

from assay import cli
from assay.report import plugin

NOW = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC)


def _policy(name: str, status: dict | None = None, *, namespace: str = "team-a") -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-11-30T09:00:00Z"},
        "spec": {"candidates": [{"name": "mini", "model": "gpt-4o-mini"}, {"name": "tiny", "model": "tiny-llm"}]},
        "status": status or {},
    }


def _run(name: str, candidate: str, status: dict) -> dict:
    return {
        "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": "2026-11-30T11:58:30Z"},
        "spec": {"policyRef": {"name": "support"}, "candidate": {"name": candidate}},
        "status": status,
    }


def test_status_shows_one_line_per_policy_and_per_run():
    policy = _policy(
        "support",
        {
            "phase": "Promoted",
            "activeRoute": {"model": "gpt-4o-mini"},
            "bestCandidate": "mini",
            "lowerBound": 0.4712,
            "savings": {"display": "62%"},
        },
    )
    passed = _run(
        "support-mini-0",
        "mini",
        {
            "phase": "Passed",
            "reason": "NonInferior",
            "progress": {"display": "140/600"},
            "statistics": {"estimate": 0.55, "lowerBound": 0.4712, "upperBound": 0.61},
        },
    )
    pending = _run("support-tiny-0", "tiny", {})

    text = plugin.status_tables([policy], [passed, pending], now=NOW)

    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "ACTIVE", "BEST", "LOWER", "SAVINGS", "PENDING", "AGE"]
    assert lines[1].split() == ["support", "Promoted", "gpt-4o-mini", "mini", "0.471", "62%", "-", "3h"]
    assert lines[3].split()[:4] == ["RUN", "POLICY", "CANDIDATE", "PHASE"]
    assert lines[4].split() == [
        "support-mini-0", "support", "mini", "Passed", "140/600", "0.550", "0.471", "0.610", "NonInferior", "90s",
    ]  # fmt: skip
    assert lines[5].split() == ["support-tiny-0", "support", "tiny", "-", "-", "-", "-", "-", "-", "90s"]
    assert lines[1].index("Promoted") == lines[0].index("PHASE")  # columns line up


def test_status_names_the_namespace_across_all_namespaces_and_says_when_empty():
    text = plugin.status_tables([_policy("a", namespace="x")], [], now=NOW, all_namespaces=True)

    assert text.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert text.splitlines()[1].split()[:2] == ["x", "a"]
    assert "No QualificationRuns found." in text
    assert plugin.status_tables([], [], now=NOW).startswith("No RoutePolicies found.")


def test_pending_action_is_shown_with_its_candidate():
    policy = _policy("support", {"phase": "Promoting", "pending": {"action": "Promote", "candidate": "mini"}})

    line = plugin.status_tables([policy], [], now=NOW).splitlines()[1]

    assert "Promote mini" in line


@pytest.mark.parametrize(
    ("created", "shown"),
    [
        ("2026-11-30T11:59:15Z", "45s"),
        ("2026-11-30T11:54:30Z", "5m30s"),
        ("2026-11-30T11:48:00Z", "12m"),
        ("2026-11-30T06:50:00Z", "5h10m"),
        ("2026-11-29T16:00:00Z", "20h"),
        ("2026-11-27T11:00:00Z", "3d1h"),
        ("2026-10-21T12:00:00Z", "40d"),
        (None, "<unknown>"),
    ],
)
def test_age_is_kubectls_short_form(created, shown):
    assert plugin.age(created, NOW) == shown


def test_promote_sends_the_candidate_name_or_best_with_a_fresh_nonce():
    policy = _policy("support", {"bestCandidate": "mini"})

    assert plugin.promote_value(policy, "tiny").split("@")[0] == "tiny"
    assert plugin.promote_value(policy, "best").split("@")[0] == "best"
    assert plugin.promote_value(policy, "mini") != plugin.promote_value(policy, "mini")


def test_promote_refuses_an_unknown_candidate_listing_the_known_ones():
    with pytest.raises(plugin.PromoteRefused, match="no candidate 'huge'; its candidates: mini, tiny"):
        plugin.promote_value(_policy("support"), "huge")


def test_promote_best_refuses_while_nothing_qualified():
    with pytest.raises(plugin.PromoteRefused, match="no qualified candidate yet"):
        plugin.promote_value(_policy("support"), "best")


def test_promote_again_after_a_rollback_is_a_new_command():
    policy = _policy("support", {"bestCandidate": "mini", "handledCommands": {"assay.dev/promote": "mini@t0"}})

    assert plugin.promote_value(policy, "mini").startswith("mini@")
    assert plugin.promote_value(policy, "mini") != "mini@t0"


def test_fresh_values_differ_from_one_call_to_the_next():
    first = plugin.fresh_value(NOW)
    later = plugin.fresh_value(NOW + datetime.timedelta(microseconds=1))

    assert first == "2026-11-30T12:00:00.000000Z" and later != first


def test_kubectl_plugin_offers_the_cluster_commands(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["kubectl-assay", "--help"])

    assert cli.kubectl_plugin() == 0

    usage = capsys.readouterr().err
    assert usage.startswith("usage: kubectl assay COMMAND")
    for name in ("status", "report", "promote", "rollback", "requalify"):
        assert f"  {name} " in usage
    assert "operator" not in usage and "evaluate" not in usage

"""The Pareto ranking: routes by spend, cumulative share, the 80% head, and what their RoutePolicies say."""

from __future__ import annotations

import pytest

from assay.spend import pareto


def policy(name: str, *, route: str | None = None, prompt_type: str = "support", status: dict | None = None) -> dict:
    gateway = {"kind": "LiteLLMConfigMap", **({"route": route} if route else {})}
    return {
        "metadata": {"namespace": "shop", "name": name},
        "spec": {"promptType": prompt_type, "gateway": gateway},
        "status": status or {},
    }


def test_routes_are_ranked_by_spend_with_cumulative_share_and_the_head_up_to_80_percent():
    rows = pareto.rank({"faq": 10.0, "support": 60.0, "summaries": 25.0, "tags": 5.0})
    assert [r.group for r in rows] == ["support", "summaries", "faq", "tags"]
    assert [round(r.cumulative, 2) for r in rows] == [0.6, 0.85, 0.95, 1.0]
    assert [r.group for r in pareto.head(rows)] == ["support", "summaries"], "the route crossing 80% is in the head"


def test_a_head_that_lands_exactly_on_the_cut_stops_there():
    rows = pareto.rank({"a": 50.0, "b": 30.0, "c": 20.0})
    assert [r.group for r in pareto.head(rows)] == ["a", "b"]


def test_ties_rank_by_name_and_zero_spend_has_no_head():
    assert [r.group for r in pareto.rank({"b": 1.0, "a": 1.0})] == ["a", "b"]
    assert pareto.head(pareto.rank({"a": 0.0})) == []


def test_a_qualified_candidate_not_serving_is_offered_with_its_projected_saving():
    status = {
        "promotedCandidate": "mini",
        "candidates": [
            {"name": "mini", "phase": "Passed", "savingsPercent": 70.0},
            {"name": "nano", "phase": "Passed", "savingsPercent": 55.0},
            {"name": "haiku", "phase": "Failed", "savingsPercent": 90.0},
        ],
    }
    read = pareto.policy_route(policy("support-policy", status=status))
    assert (read.route, read.promoted, read.qualified, read.saving_percent) == ("support", "mini", "nano", 55.0)
    rows = pareto.rank({"support": 10.0, "faq": 1.0}, requests={"support": 100}, policies=[read])
    assert rows[0].best_saving == read and rows[0].cost_per_request == pytest.approx(0.1)
    assert rows[1].policies == () and rows[1].requests is None


def test_the_route_is_spec_gateway_route_else_the_prompt_type():
    assert pareto.policy_route(policy("p", route="support-v2")).route == "support-v2"
    assert pareto.policy_route(policy("p")).qualified is None


def test_the_cut_must_be_a_share():
    with pytest.raises(ValueError, match="Pareto cut"):
        pareto.rank({"a": 1.0}, cut=80)

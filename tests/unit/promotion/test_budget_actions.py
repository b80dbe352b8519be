"""Budget alerts to actions (assay.promotion.budget) as a specification: each action, the dry run, repeats,
resolution and the freeze's effect on the promotion machine."""

from __future__ import annotations

import datetime

import pytest

from assay.api import common, routepolicy
from assay.promotion import budget, machine

NOW = datetime.datetime(2026, 12, 4, 9, 0, tzinfo=datetime.UTC)
STARTED = NOW - datetime.timedelta(minutes=2)

SPEC = {
    "promptType": "support-summary",
    "gateway": {"kind": "LiteLLMConfigMap", "configMapRef": {"name": "litellm-config", "key": "config.yaml"}},
    "baseline": {"model": "gpt-4o"},
    "candidates": [
        {"name": "mini", "model": "gpt-4o-mini"},
        {"name": "nano", "model": "gpt-4.1-nano"},
        {"name": "tiny", "model": "tiny-llm"},
    ],
    "qualification": {
        "endpoint": {"url": "http://llm.example:4000"},
        "dataset": {"configMapRef": {"name": "prompts", "key": "data.jsonl"}},
        "judge": {"model": "judge-model"},
    },
}


def spec(action: str = "Alert", *, dry_run: bool = False, **changes: object) -> routepolicy.RoutePolicySpec:
    body = {**SPEC, "budget": {"dailyUsd": 50, "action": action, "dryRun": dry_run}, **changes}
    return routepolicy.RoutePolicySpec.model_validate(body)


def good() -> routepolicy.RouteState:
    return routepolicy.RouteState(model="gpt-4o", snapshot={"kind": "LiteLLM"}, fingerprint="sha256:good")


def candidates(**decided_days_ago: float) -> list[routepolicy.CandidateStatus]:
    costs = {"mini": 0.0004, "nano": 0.0001, "tiny": 0.00001}
    entries = []
    for name in ("mini", "nano", "tiny"):
        days = decided_days_ago.get(name)
        entries.append(
            routepolicy.CandidateStatus(
                name=name,
                phase="Passed" if days is not None else "Failed",
                cost_per_request=costs[name],
                decided_at=None if days is None else NOW - datetime.timedelta(days=days),
            )
        )
    return entries


def status(*, promoted: str | None = None, **decided_days_ago: float) -> machine.Status:
    state = machine.Status(
        phase="Promoted" if promoted else "Qualified",
        last_known_good=good(),
        active_route=good(),
        route_source=machine.source_of(spec()),
        candidates=candidates(**decided_days_ago),
        best_candidate="mini",
        promoted_candidate=promoted,
    )
    if promoted:
        state.active_route = routepolicy.RouteState(model="gpt-4o-mini", candidate=promoted, fingerprint="sha256:m")
    return state


def fire(state: machine.Status, policy: routepolicy.RoutePolicySpec, *, key: str = "f1@t", trigger: str = "BurnRate"):
    return budget.apply_alert(
        state,
        policy,
        trigger=trigger,  # type: ignore[arg-type]
        alert="AssayBudgetBurnRate",
        key=key,
        firing=True,
        since=STARTED,
        generation=3,
        now=NOW,
    )


def resolve(state: machine.Status, policy: routepolicy.RoutePolicySpec, *, key: str = "f1@t"):
    return budget.apply_alert(
        state,
        policy,
        trigger="BurnRate",
        alert="AssayBudgetBurnRate",
        key=key,
        firing=False,
        since=STARTED,
        generation=3,
        now=NOW,
    )


def condition(state: machine.Status) -> common.Condition:
    return next(c for c in state.conditions if c.type == budget.CONDITION)


def test_alert_action_sets_the_condition_and_an_event_and_touches_no_route():
    state = status(promoted="mini", mini=1)
    applied = fire(state, spec("Alert"))
    assert applied.changed and applied.intent is None and applied.action == "Alert"
    assert state.pending is None and state.promoted_candidate == "mini"
    assert (condition(state).status, condition(state).reason) == ("True", "BurnRate")
    assert [(n.type, n.reason) for n in applied.notices] == [("Warning", "BudgetExceeded")]
    assert state.budget is not None and [a.trigger for a in state.budget.firing] == ["BurnRate"]
    assert state.budget.last_action is not None and state.budget.last_action.action == "Alert"


def test_rollback_action_puts_a_budget_rollback_intent():
    state = status(promoted="mini", mini=1)
    applied = fire(state, spec("RollBack"))
    assert applied.intent == "RollBack"
    assert state.pending is not None and (state.pending.action, state.pending.source) == ("RollBack", "Budget")
    assert state.pending.reason == "AssayBudgetBurnRate"


def test_rollback_action_with_the_baseline_serving_does_nothing_but_say_so():
    state = status(mini=1)
    applied = fire(state, spec("RollBack"))
    assert applied.intent is None and state.pending is None
    assert "nothing to roll back" in condition(state).message


def test_shift_goes_to_the_cheapest_candidate_with_a_young_passed_qualification():
    # tiny is cheapest but failed; nano passed 40 days ago (older than 30); mini passed yesterday.
    state = status(mini=1, nano=40)
    applied = fire(state, spec("ShiftToQualified"))
    assert applied.intent == "Promote"
    assert state.pending is not None and (state.pending.candidate, state.pending.source) == ("mini", "Budget")
    # With nano young too, nano (cheaper) wins.
    state = status(mini=1, nano=2)
    fire(state, spec("ShiftToQualified"))
    assert state.pending is not None and state.pending.candidate == "nano"


def test_shift_without_a_trusted_qualification_only_alerts():
    state = status(mini=31)
    applied = fire(state, spec("ShiftToQualified"))
    assert applied.intent is None and state.pending is None
    assert "no candidate has a Passed qualification younger than 30 days" in condition(state).message


def test_shift_when_the_cheapest_already_serves_does_nothing():
    state = status(promoted="mini", mini=1)
    applied = fire(state, spec("ShiftToQualified"))
    assert applied.intent is None and state.pending is None


def test_shift_on_a_paused_policy_is_refused():
    state = status(mini=1)
    applied = fire(state, spec("ShiftToQualified", paused=True))
    assert applied.intent is None and "paused" in condition(state).message


@pytest.mark.parametrize("action", ["FreezePromotions", "ShiftToQualified", "RollBack"])
def test_dry_run_records_what_it_would_do_and_does_nothing(action):
    state = status(promoted="mini" if action == "RollBack" else None, mini=1)
    before_pending = state.pending
    policy = spec(action, dry_run=True)
    applied = fire(state, policy)
    assert applied.intent is None and state.pending is before_pending
    assert "dry run (spec.budget.dryRun): would" in condition(state).message
    assert [(n.type, n.reason) for n in applied.notices] == [("Warning", "BudgetDryRun")]
    assert state.budget is not None and state.budget.last_action is not None and state.budget.last_action.dry_run
    assert not machine.promotions_frozen(state, policy)


def test_a_repeat_of_the_same_firing_acts_once():
    state = status(promoted="mini", mini=1)
    assert fire(state, spec("RollBack")).intent == "RollBack"
    state.pending = None  # the writer restored it; the alert keeps firing and Alertmanager repeats it
    repeat = fire(state, spec("RollBack"))
    assert not repeat.changed and repeat.intent is None and repeat.action is None and not repeat.notices


def test_freeze_blocks_automatic_and_commanded_promotions_and_holds_a_canary_until_resolved():
    policy = spec("FreezePromotions")
    state = status(mini=1)
    fire(state, policy)
    assert machine.promotions_frozen(state, policy)
    planned = machine.plan(state, spec=policy, annotations={}, ready=True, now=NOW)
    assert planned.status.pending is None, "no automatic promotion while frozen"
    commanded = machine.plan(state, spec=policy, annotations={machine.PROMOTE_ANNOTATION: "mini"}, ready=True, now=NOW)
    assert commanded.status.pending is None
    assert any("frozen" in n.message for n in commanded.notices)
    # A promotion under way holds where it is.
    held = state.model_copy(deep=True)
    held.pending = machine.new_intent(
        "Promote", source="Automatic", reason="QualificationPassed", candidate="mini", now=NOW
    )
    assert machine.next_operation(held, policy, now=NOW, supports_weights=False).kind == "Nothing"

    applied = resolve(state, policy)
    assert applied.changed and [(n.type, n.reason) for n in applied.notices] == [("Normal", "BudgetRecovered")]
    assert (condition(state).status, condition(state).reason) == ("False", "WithinBudget")
    assert not machine.promotions_frozen(state, policy)
    planned = machine.plan(state, spec=policy, annotations={}, ready=True, now=NOW)
    assert planned.status.pending is not None and planned.status.pending.candidate == "mini"


def test_resolution_of_one_trigger_keeps_the_condition_while_another_fires():
    policy = spec("FreezePromotions")
    state = status(mini=1)
    fire(state, policy, key="burn@t", trigger="BurnRate")
    fire(state, policy, key="daily@t", trigger="Daily")
    resolve(state, policy, key="burn@t")
    assert condition(state).status == "True" and machine.promotions_frozen(state, policy)
    assert state.budget is not None and [a.trigger for a in state.budget.firing] == ["Daily"]


def test_an_unknown_resolution_changes_nothing():
    state = status(mini=1)
    assert not resolve(state, spec()).changed and state.budget is None


def test_a_rollback_always_wins_over_a_freeze():
    policy = spec("FreezePromotions")
    state = status(promoted="mini", mini=1)
    fire(state, policy)
    planned = machine.plan(state, spec=policy, annotations={machine.ROLLBACK_ANNOTATION: "1"}, ready=True, now=NOW)
    assert planned.status.pending is not None and planned.status.pending.action == "RollBack"
    assert machine.next_operation(planned.status, policy, now=NOW, supports_weights=False).kind == "RollBack"


def test_budget_rollback_is_recorded_with_its_own_reason():
    state = status(promoted="mini", mini=1)
    fire(state, spec("RollBack"))
    machine.record_rolled_back(state, state=good(), describe="the route", generation=3, now=NOW)
    rolled = next(c for c in state.conditions if c.type == "RolledBack")
    assert rolled.reason == "BudgetExceeded" and "AssayBudgetBurnRate" in rolled.message

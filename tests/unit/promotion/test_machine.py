"""The promotion state machine as a specification: status + spec + commands -> intent; outcome -> status."""

from __future__ import annotations

import datetime

import pytest

from assay.api import routepolicy
from assay.promotion import machine

NOW = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=datetime.UTC)

SPEC = {
    "promptType": "support-summary",
    "gateway": {"kind": "HTTPRoute", "routeRef": {"name": "llm"}},
    "baseline": {"model": "gpt-4o", "backend": "big"},
    "candidates": [{"name": "mini", "model": "gpt-4o-mini", "backend": "small"}],
    "qualification": {
        "endpoint": {"url": "http://llm.example:4000"},
        "dataset": {"configMapRef": {"name": "prompts", "key": "data.jsonl"}},
        "judge": {"model": "judge-model"},
    },
    "promotion": {"strategy": "Canary", "steps": [10, 50, 100], "soakSeconds": 60},
}


def spec(**changes: object) -> routepolicy.RoutePolicySpec:
    return routepolicy.RoutePolicySpec.model_validate({**SPEC, **changes})


def route(weights: dict[str, int], fingerprint: str) -> routepolicy.RouteState:
    return routepolicy.RouteState(
        weights=weights, snapshot={"kind": "HTTPRoute", "entries": {}}, fingerprint=fingerprint
    )


def snapshotted(phase: str = "Qualified", **fields: object) -> machine.Status:
    good = route({"big": 100, "small": 0}, "sha256:good")
    return machine.Status(
        phase=phase,
        best_candidate="mini",
        last_known_good=good,
        active_route=good,
        route_source=machine.source_of(spec()),
        **fields,
    )


def promoted() -> machine.Status:
    status = snapshotted("Promoted", promoted_candidate="mini")
    status.active_route = route({"big": 0, "small": 100}, "sha256:mini")
    return status


def plan(status: machine.Status, *, annotations: dict[str, str] | None = None, ready: bool = True, **spec_changes):
    return machine.plan(status, spec=spec(**spec_changes), annotations=annotations or {}, ready=ready, now=NOW)


def test_passed_qualification_becomes_an_automatic_promote_intent():
    planned = plan(snapshotted())
    assert planned.status.pending is not None
    assert (planned.status.pending.action, planned.status.pending.source) == ("Promote", "Automatic")
    assert planned.status.pending.candidate == "mini" and planned.status.pending.id


@pytest.mark.parametrize(
    ("why", "status", "ready", "changes"),
    [
        ("not ready", snapshotted(), False, {}),
        ("paused", snapshotted(), True, {"paused": True}),
        ("manual promotion", snapshotted(), True, {"promotion": {"automatic": False}}),
        ("no snapshot yet", machine.Status(phase="Qualified", best_candidate="mini"), True, {}),
        ("already promoted", promoted(), True, {}),
    ],
)
def test_no_automatic_promotion_when(why, status, ready, changes):
    assert plan(status, ready=ready, **changes).status.pending is None, why


@pytest.mark.parametrize("ready", [True, False])
@pytest.mark.parametrize("paused", [True, False])
def test_rollback_command_acts_whatever_ready_and_paused_say(ready, paused):
    planned = plan(promoted(), annotations={machine.ROLLBACK_ANNOTATION: "1"}, ready=ready, paused=paused)
    assert planned.status.pending is not None
    assert (planned.status.pending.action, planned.status.pending.source) == ("RollBack", "Command")
    assert planned.status.handled_commands[machine.ROLLBACK_ANNOTATION] == "1"


def test_rollback_replaces_a_pending_promotion_and_nothing_replaces_a_rollback():
    status = snapshotted()
    status.pending = machine.new_intent("Promote", source="Automatic", reason="x", candidate="mini", now=NOW)
    rolled = plan(status, annotations={machine.ROLLBACK_ANNOTATION: "1"}).status
    assert rolled.pending is not None and rolled.pending.action == "RollBack"
    first = rolled.pending.id

    again = plan(rolled, annotations={machine.ROLLBACK_ANNOTATION: "2", machine.PROMOTE_ANNOTATION: "mini"}).status
    assert again.pending is not None and (again.pending.action, again.pending.id) == ("RollBack", first)
    assert not machine.request_rollback(again, source="Alert", reason="Drift", now=NOW)


def test_a_command_acts_once_per_value():
    once = plan(promoted(), annotations={machine.ROLLBACK_ANNOTATION: "a"}).status
    once.pending = None
    assert plan(once, annotations={machine.ROLLBACK_ANNOTATION: "a"}).status.pending is None


def test_promote_command_is_rejected_with_a_reason_when_paused_or_not_ready_or_unknown():
    for kwargs, words in [
        ({"paused": True}, "paused"),
        ({"ready": False}, "not Ready"),
        ({}, "no such candidate"),
    ]:
        value = "nope" if not kwargs else "mini"
        planned = plan(snapshotted("NotQualified"), annotations={machine.PROMOTE_ANNOTATION: value}, **kwargs)
        assert planned.status.pending is None
        assert [n.reason for n in planned.notices] == ["PromoteRejected"] and words in planned.notices[0].message


def test_alert_on_a_route_already_at_last_known_good_does_nothing():
    status = snapshotted("RolledBack")
    assert not machine.request_rollback(status, source="Alert", reason="Drift", now=NOW)
    assert status.pending is None


def test_alert_on_a_hand_edited_route_restores_it():
    status = snapshotted("RolledBack")
    machine.set_condition(status, "Degraded", "True", "RouteChangedExternally", "edited", generation=1, now=NOW)
    assert machine.request_rollback(status, source="Alert", reason="Drift", now=NOW)


def test_gateway_change_while_promoted_restores_the_old_route_first():
    planned = plan(promoted(), gateway={"kind": "HTTPRoute", "routeRef": {"name": "other"}})
    pending = planned.status.pending
    assert pending is not None and (pending.action, pending.source) == ("RollBack", "GatewayChange")
    assert planned.status.route_source == machine.source_of(spec()), "restores go to the old location"
    assert [n.reason for n in planned.notices] == ["GatewayChanged"]


def test_gateway_change_with_the_baseline_serving_snapshots_the_new_route():
    planned = plan(snapshotted("RolledBack"), gateway={"kind": "HTTPRoute", "routeRef": {"name": "other"}})
    assert planned.status.pending is None
    assert planned.status.last_known_good is None and planned.status.route_source is None


def test_rollback_after_gateway_change_clears_the_old_snapshot_for_a_new_one():
    status = plan(promoted(), gateway={"kind": "HTTPRoute", "routeRef": {"name": "other"}}).status
    restored = route({"big": 100, "small": 0}, "sha256:good")
    machine.record_rolled_back(status, state=restored, describe="HTTPRoute", generation=2, now=NOW)
    assert status.pending is None and status.phase == "RolledBack"
    assert status.last_known_good is None and status.route_source is None
    operation = machine.next_operation(
        status, spec(gateway={"kind": "HTTPRoute", "routeRef": {"name": "other"}}), now=NOW, supports_weights=True
    )
    assert operation.kind == "Snapshot"


def test_canary_steps_soak_then_advance_then_promote():
    status = plan(snapshotted()).status
    steps = machine.canary_steps(spec(), supports_weights=True)
    percents = []
    now = NOW
    while status.pending is not None:
        operation = machine.next_operation(status, spec(), now=now, supports_weights=True)
        if operation.kind == "Wait":
            assert operation.due is not None and operation.due > now
            now = operation.due
            continue
        assert operation.kind == "Promote"
        percents.append(operation.percent)
        state = route({"big": 100 - operation.percent, "small": operation.percent}, f"sha256:{operation.percent}")
        machine.record_promote_step(
            status,
            spec(),
            state=state,
            steps=steps,
            describe="HTTPRoute",
            restarts_gateway=False,
            generation=1,
            now=now,
        )
    assert percents == [10, 50, 100]
    assert status.phase == "Promoted" and status.promoted_candidate == "mini"
    assert now - NOW == datetime.timedelta(seconds=120)


def test_paused_policy_holds_its_promotion_but_not_its_rollback():
    status = plan(snapshotted()).status
    assert machine.next_operation(status, spec(paused=True), now=NOW, supports_weights=True).kind == "Nothing"
    status.pending = machine.new_intent("RollBack", source="Command", reason="Manual", now=NOW)
    assert machine.next_operation(status, spec(paused=True), now=NOW, supports_weights=True).kind == "RollBack"


def test_a_failing_rollback_is_kept_and_retried_with_backoff_and_urgent_skips_the_wait():
    status = promoted()
    machine.request_rollback(status, source="Alert", reason="Drift", now=NOW)
    notices = machine.record_failure(
        status,
        what="RollBack",
        reason="GatewayRejected",
        message="400",
        retryable=False,
        backoff=8,
        generation=1,
        now=NOW,
    )
    assert status.pending is not None and status.pending.attempts == 1
    assert [n.reason for n in notices] == ["RollbackFailing"]
    assert machine.next_operation(status, spec(), now=NOW, supports_weights=True).kind == "Wait"
    assert machine.next_operation(status, spec(), now=NOW, supports_weights=True, urgent=True).kind == "RollBack"
    again = machine.record_failure(
        status,
        what="RollBack",
        reason="GatewayRejected",
        message="400",
        retryable=False,
        backoff=8,
        generation=1,
        now=NOW,
    )
    assert again == [], "one Event per failure reason, not per attempt"


def test_a_promotion_that_fails_for_good_is_dropped():
    status = plan(snapshotted()).status
    machine.record_failure(
        status,
        what="Promote",
        reason="GatewayRejected",
        message="no",
        retryable=False,
        backoff=1,
        generation=1,
        now=NOW,
    )
    assert status.pending is None


def test_hand_edit_is_reported_once_and_never_overwritten():
    status = promoted()
    first = machine.record_verified(status, live_fingerprint="sha256:edited", describe="r", generation=1, now=NOW)
    second = machine.record_verified(status, live_fingerprint="sha256:edited", describe="r", generation=1, now=NOW)
    assert [n.reason for n in first] == ["RouteChangedExternally"] and second == []
    assert status.pending is None
    machine.record_verified(status, live_fingerprint="sha256:mini", describe="r", generation=1, now=NOW)
    assert not machine.changed_externally(status)


def test_alert_store_keeps_the_newest_firings_only():
    status = machine.Status()
    keys = [machine.alert_key("f", NOW + datetime.timedelta(seconds=i)) for i in range(10_000)]
    machine.remember_alerts(status, keys)
    assert len(status.handled_alerts) == machine.HANDLED_ALERTS_KEPT
    assert status.handled_alerts[-1] == keys[-1]


def test_status_round_trips_through_the_wire_form_unchanged():
    status = plan(promoted(), annotations={machine.ROLLBACK_ANNOTATION: "1"}).status
    wire = machine.wire(status)
    assert machine.wire(machine.Status.model_validate(wire)) == wire


def _without_best(status: machine.Status) -> machine.Status:
    status.best_candidate = None
    return status


def _ready(status: machine.Status, value: str = "True") -> machine.Status:
    machine.set_condition(status, "Ready", value, "ReferencesResolved", "ok", generation=1, now=NOW)
    return status


@pytest.mark.parametrize(
    ("why", "status", "spec_changes"),
    [
        ("promoted and settled", _ready(promoted()), {}),
        ("rolled back", _ready(snapshotted("RolledBack")), {}),
        ("no candidate passed", _ready(_without_best(snapshotted("NotQualified"))), {}),
        ("qualified, promotion by hand", _ready(snapshotted("Qualified")), {"promotion": {"automatic": False}}),
        ("qualified, paused", _ready(snapshotted("Qualified")), {"paused": True}),
    ],
)
def test_idle_policies_need_no_periodic_reconcile(why, status, spec_changes):
    assert not machine.in_flight(status, spec(**spec_changes)), why


@pytest.mark.parametrize(
    ("why", "status"),
    [
        ("not ready: a reference may appear", _ready(promoted(), "False")),
        ("no Ready condition yet", promoted()),
        ("qualifying", _ready(_without_best(snapshotted("Qualifying")))),
        ("promoting (a canary soaks)", _ready(snapshotted("Promoting"))),
        ("degraded", _ready(snapshotted("Degraded"))),
        ("no snapshot yet", _ready(machine.Status(phase="Promoted"))),
        ("qualified, automatic promotion not started", _ready(snapshotted("Qualified"))),
        (
            "an intent pending",
            _ready(
                promoted().model_copy(
                    update={"pending": machine.new_intent("RollBack", source="Alert", reason="Drift", now=NOW)}
                )
            ),
        ),
    ],
)
def test_in_flight_policies_are_reconciled_periodically(why, status):
    assert machine.in_flight(status, spec()), why


def test_a_policy_whose_spec_does_not_parse_keeps_being_reconciled():
    assert machine.in_flight(_ready(promoted()), None)

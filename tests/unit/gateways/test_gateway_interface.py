"""Snapshots, fingerprints, targets and the status form."""

from __future__ import annotations

import pytest

from assay.gateways import interface


def snapshot(entries, **kwargs):
    return interface.RouteSnapshot(
        kind="HTTPRoute", location="HTTPRoute llm/chat rules[0].backendRefs", entries=entries, **kwargs
    )


def test_fingerprint_ignores_key_order():
    assert interface.fingerprint({"weights": {"a": 1, "b": 2}}) == interface.fingerprint({"weights": {"b": 2, "a": 1}})


def test_fingerprint_changes_with_any_owned_value():
    base = interface.fingerprint({"alias": "gpt-big"})
    assert interface.fingerprint({"alias": "gpt-small"}) != base
    assert interface.fingerprint({"alias": None}) != base
    assert interface.fingerprint({"alias": {"model": "gpt-big"}}) != base


def test_fingerprint_is_a_plain_sha256_of_canonical_json_so_it_is_stable_across_processes():
    assert interface.fingerprint({}) == "sha256:44136fa355b3678a"  # sha256(b"{}")


def test_snapshot_round_trips_through_the_status_form():
    original = snapshot(
        {"weights": {"gpt-big": 90, "gpt-small": None}}, weights={"gpt-big": 90, "gpt-small": 1}, version="42"
    )
    state = original.to_state(candidate="small")
    assert state.fingerprint == original.fingerprint
    assert state.candidate == "small" and state.weights == {"gpt-big": 90, "gpt-small": 1}
    wire = state.to_wire()
    assert wire["snapshot"] == {"kind": "HTTPRoute", "location": original.location, "entries": dict(original.entries)}
    again = interface.RouteSnapshot.from_state(type(state).model_validate(wire))
    assert again == original and again.fingerprint == original.fingerprint
    assert again.version is None  # the resourceVersion is never persisted


def test_status_without_a_snapshot_cannot_be_restored():
    state = snapshot({"alias": "a"}).to_state()
    state.snapshot = {}
    with pytest.raises(interface.SnapshotMismatch):
        interface.RouteSnapshot.from_state(state)


def test_expected_state_differing_from_live_is_a_hand_edit():
    live = snapshot({"weights": {"gpt-big": 70}})
    expected = snapshot({"weights": {"gpt-big": 100}})
    with pytest.raises(interface.RouteChangedExternally) as raised:
        interface.check_expected(live, expected)
    assert raised.value.reason == "RouteChangedExternally" and not raised.value.retryable
    assert raised.value.live is live and '"gpt-big":70' in str(raised.value)
    interface.check_expected(live, None)
    interface.check_expected(live, snapshot({"weights": {"gpt-big": 70}}))


def test_snapshot_of_another_route_is_refused():
    other = interface.RouteSnapshot(kind="HTTPRoute", location="HTTPRoute llm/other rules[0].backendRefs", entries={})
    with pytest.raises(interface.SnapshotMismatch, match="llm/other"):
        interface.check_same_route("HTTPRoute", "HTTPRoute llm/chat rules[0].backendRefs", other)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"model_group": "a", "weights": {"a": 1}}, {"weights": {}}, {"weights": {"a": -1}}, {"weights": {"a": 0}}],
)
def test_invalid_targets_are_refused(kwargs):
    with pytest.raises(ValueError):
        interface.RouteTarget(**kwargs)


def test_errors_carry_reason_and_retryability():
    assert interface.GatewayConflict("x").retryable and interface.GatewayConflict.reason == "GatewayConflict"
    assert interface.GatewayUnreachable("x").retryable
    assert not interface.RouteNotFound("x").retryable
    assert interface.GatewayRejected("x", retryable=True).retryable
    with (
        pytest.raises(interface.BackendNotFound, match=r"^HTTPRoute llm/chat: no backend"),
        interface.about("HTTPRoute llm/chat"),
    ):
        raise interface.BackendNotFound("no backend")

"""A snapshot read back from status (where nulls are dropped) keeps its fingerprint."""

from assay.api import routepolicy
from assay.gateways import interface


def test_a_null_entry_fingerprints_like_an_absent_one():
    assert interface.fingerprint({"alias": None}) == interface.fingerprint({})
    assert interface.fingerprint({"alias": "gpt-4o"}) != interface.fingerprint({})


def test_snapshot_survives_the_status_round_trip():
    live = interface.RouteSnapshot(kind="LiteLLMConfigMap", location="cm", entries={"alias": None})
    wire = live.to_state().to_wire()
    back = interface.RouteSnapshot.from_state(routepolicy.RouteState.model_validate(wire))
    assert back.fingerprint == live.fingerprint == wire["fingerprint"]

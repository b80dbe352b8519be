"""The alert path's index of RoutePolicies, kept from watch events."""

from assay.controllers import handle_alert


def _policy(uid: str, name: str, **spec: object) -> dict:
    return {"metadata": {"uid": uid, "name": name, "namespace": "ns"}, "spec": spec, "status": {"phase": "Promoted"}}


def test_index_follows_added_modified_and_deleted_events():
    index = handle_alert.PolicyIndex()
    index.observe("ADDED", _policy("u1", "a", promptType="x"))
    index.observe(None, _policy("u2", "b"))  # the initial listing has no event type
    index.observe("MODIFIED", _policy("u1", "a", promptType="y"))
    index.observe("DELETED", _policy("u2", "b"))
    assert [(p["metadata"]["name"], p["spec"]) for p in index.items()] == [("a", {"promptType": "y"})]
    assert "status" not in index.items()[0], "only what matching needs is kept"


def test_alerts_list_from_the_api_until_the_index_has_had_time_to_fill(monkeypatch):
    index = handle_alert.PolicyIndex()
    assert not index.warm()
    monkeypatch.setattr(handle_alert, "WARM_UP_SECONDS", 0.0)
    assert index.warm()

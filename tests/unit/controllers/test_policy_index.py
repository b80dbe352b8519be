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


def test_index_is_warm_only_after_the_first_listing_and_keeps_newer_watch_copies():
    index = handle_alert.PolicyIndex()
    index.observe("MODIFIED", _policy("u1", "a", promptType="newer"))
    index.observe("DELETED", _policy("u3", "c"))
    assert not index.warm()

    index.fill([_policy("u1", "a", promptType="older"), _policy("u2", "b"), _policy("u3", "c")])

    assert index.warm()
    assert sorted((p["metadata"]["name"], p["spec"].get("promptType")) for p in index.items()) == [
        ("a", "newer"),
        ("b", None),
    ]

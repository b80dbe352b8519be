"""Rewriting backendRefs weights: only the named backends' weights change."""

from __future__ import annotations

import copy

import pytest

from assay.gateways import interface, weights

REFS = [
    {"name": "gpt-big", "weight": 100, "priority": 0, "modelNameOverride": "gpt-4o"},
    {"name": "gpt-small", "weight": 0},
    {"name": "shadow", "weight": 5, "namespace": "other"},
    {"name": "unweighted"},
]


def test_canary_step_changes_only_the_named_weights():
    after = weights.set_weights(REFS, {"gpt-big": 90, "gpt-small": 10})
    assert after == [
        {"name": "gpt-big", "weight": 90, "priority": 0, "modelNameOverride": "gpt-4o"},
        {"name": "gpt-small", "weight": 10},
        {"name": "shadow", "weight": 5, "namespace": "other"},
        {"name": "unweighted"},
    ]


def test_rewrite_does_not_mutate_its_input():
    before = copy.deepcopy(REFS)
    weights.set_weights(REFS, {"gpt-big": 0, "gpt-small": 100})
    assert before == REFS


def test_missing_backend_is_refused_by_name():
    with pytest.raises(interface.BackendNotFound) as raised:
        weights.set_weights(REFS, {"gpt-big": 50, "gpt-tiny": 50}, where="HTTPRoute llm/chat rules[0].backendRefs")
    message = str(raised.value)
    assert "HTTPRoute llm/chat rules[0].backendRefs" in message and "'gpt-tiny'" in message
    assert raised.value.reason == "BackendNotFound" and not raised.value.retryable


def test_duplicate_backend_names_are_refused():
    with pytest.raises(interface.InvalidGatewayConfig, match="twice"):
        weights.set_weights([{"name": "a"}, {"name": "a", "namespace": "x"}], {"a": 1})


def test_unset_weight_reads_as_none_and_applies_as_the_default():
    exact = weights.backend_weights(REFS, ["unweighted", "gpt-small", "absent"])
    assert exact == {"unweighted": None, "gpt-small": 0}
    assert weights.effective(exact) == {"unweighted": 1, "gpt-small": 0}


def test_none_weight_restores_an_unset_field():
    set_once = weights.set_weights(REFS, {"unweighted": 7})
    assert weights.set_weights(set_once, {"unweighted": None}) == REFS


def test_restore_round_trips_exactly():
    owned = ["gpt-big", "gpt-small", "unweighted"]
    snapshot = weights.backend_weights(REFS, owned)
    promoted = weights.set_weights(REFS, {"gpt-big": 0, "gpt-small": 100, "unweighted": 3})
    assert weights.set_weights(promoted, snapshot) == REFS

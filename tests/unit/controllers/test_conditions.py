from assay.controllers import conditions, references


def test_unchanged_condition_keeps_its_transition_time():
    first = conditions.set_condition(
        [], type="Ready", status="True", reason="Ok", message="m", observed_generation=1, at="2026-01-01T00:00:00Z"
    )
    again = conditions.set_condition(
        first, type="Ready", status="True", reason="Ok", message="m", observed_generation=1, at="2026-02-02T00:00:00Z"
    )
    assert again == first


def test_status_flip_moves_the_transition_time_and_keeps_other_conditions():
    start = [{"type": "Promoted", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "t0"}]
    ready = conditions.set_condition(
        start, type="Ready", status="True", reason="Ok", message="", observed_generation=1, at="t1"
    )
    flipped = conditions.set_condition(
        ready, type="Ready", status="False", reason="SecretNotFound", message="x", observed_generation=2, at="t2"
    )
    assert conditions.get(flipped, "Ready")["lastTransitionTime"] == "t2"
    assert conditions.get(flipped, "Promoted") == start[0]
    assert not conditions.is_true(flipped, "Ready")


def test_reference_check_names_the_object_the_key_and_the_field():
    refs = [references.Reference("Secret", "keys", "api-key", "spec.endpoint.apiKeySecretRef")]
    missing = references.check(refs, keys_of=lambda kind, name: None)
    assert missing is not None and missing.reason == "SecretNotFound"
    assert "'keys'" in missing.message and "spec.endpoint.apiKeySecretRef" in missing.message
    no_key = references.check(refs, keys_of=lambda kind, name: {"other"})
    assert no_key is not None and no_key.reason == "SecretKeyNotFound" and "other" in no_key.message
    assert references.check(refs, keys_of=lambda kind, name: {"api-key"}) is None


def test_run_names_fit_a_label_value():
    from assay.controllers import policy_runs

    name = policy_runs.run_name("p" * 253, "c" * 40, "0123456789abcdef")
    assert len(name) <= 63 and name.endswith("-" + "c" * 40 + "-01234567")


def test_status_patch_deletes_fields_the_desired_status_no_longer_has():
    from assay.controllers import status

    current = {
        "phase": "Promoted",
        "activeRoute": {"model": "tiny-llm", "candidate": "tiny", "fingerprint": "a"},
        "pending": {"action": "RollBack"},
    }
    desired = {"phase": "RolledBack", "activeRoute": {"fingerprint": "b"}}
    assert status.changed_fields(current, desired) == {
        "phase": "RolledBack",
        "activeRoute": {"fingerprint": "b", "model": None, "candidate": None},
        "pending": None,
    }
    assert status.changed_fields(desired, desired) == {}

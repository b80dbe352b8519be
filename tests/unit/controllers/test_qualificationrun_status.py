"""The status a QualificationRun's reconcile writes is stable against the API server's schema defaults: a field
the schema defaults and the operator leaves out would be filled in by the server and deleted by the next write,
one status write per tick of an idle run."""

from __future__ import annotations

from assay.api import qualificationrun
from assay.controllers import handle_qualificationrun


def test_progress_carries_every_defaulted_field_so_an_idle_run_writes_nothing():
    defaulted = {
        field.alias or name
        for name, field in qualificationrun.Progress.model_fields.items()
        if field.default is not None
    }
    for total in (None, 0, 120):
        progress = handle_qualificationrun.progress_status(
            evaluated=0, samples=0, controls=0, total=total, invalid_lines=0
        )
        assert defaulted <= set(progress), defaulted - set(progress)
        qualificationrun.Progress.model_validate(progress)


def test_progress_display_reads_as_evaluated_of_total():
    progress = handle_qualificationrun.progress_status(evaluated=12, samples=10, controls=2, total=120, invalid_lines=1)
    assert progress["display"] == "12/120" and progress["total"] == 120
    assert (
        handle_qualificationrun.progress_status(evaluated=3, samples=3, controls=0, total=None, invalid_lines=0)[
            "display"
        ]
        == "3"
    )


def _run(uid: str, phase: str | None, *, owner: bool = True) -> dict:
    meta = {"uid": uid, "namespace": "team", "name": f"run-{uid}"}
    if owner:
        meta["ownerReferences"] = [{"kind": "RoutePolicy", "name": "support", "uid": "policy-uid"}]
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


def test_a_runs_phase_change_names_its_policy_once_per_change():
    change = handle_qualificationrun.phase_change
    assert change("ADDED", _run("a", None)) is None, "the first sight of a run is not a change"
    assert change("MODIFIED", _run("a", "Running")) == ("team", "support", "policy-uid")
    assert change("MODIFIED", _run("a", "Running")) is None, "progress alone does not reconcile the policy"
    assert change("MODIFIED", _run("a", "Passed")) == ("team", "support", "policy-uid")
    assert change("DELETED", _run("a", "Passed")) is None
    assert change("MODIFIED", _run("a", "Failed")) is None, "a deleted run is forgotten: next sight is a first"


def test_a_run_without_an_owning_policy_reconciles_nothing():
    change = handle_qualificationrun.phase_change
    assert change(None, _run("b", None, owner=False)) is None
    assert change("MODIFIED", _run("b", "Running", owner=False)) is None

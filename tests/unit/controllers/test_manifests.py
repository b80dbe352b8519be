"""The evaluation Job and the evaluator's identity, as plain data."""

from __future__ import annotations

import pathlib

import yaml

from assay.api import qualificationrun
from assay.controllers import manifests

EXAMPLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "qualificationrun.yaml"


def _job(**execution):
    wire = yaml.safe_load(EXAMPLE.read_text())["spec"]
    wire["execution"] = execution
    wire["endpoint"]["apiKeySecretRef"] = {"name": "keys", "key": "api-key"}
    spec = qualificationrun.QualificationRunSpec.model_validate(wire)
    return manifests.evaluation_job(run_name="r", run_uid="u-1", namespace="ns", spec=spec, wire_spec=wire)


def test_job_is_owned_by_the_run_and_runs_restricted():
    job = _job()
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("QualificationRun", "r", "u-1", True)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["serviceAccountName"] == manifests.evaluator_account("r") == "assay-eval-r"
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert job["spec"]["activeDeadlineSeconds"] and job["spec"]["ttlSecondsAfterFinished"]


def test_api_keys_come_from_secret_refs_never_values():
    env = {e["name"]: e for e in _job()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ASSAY_ENDPOINT_API_KEY"] == {
        "name": "ASSAY_ENDPOINT_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "keys", "key": "api-key"}},
    }
    assert "value" not in env["ASSAY_JUDGE_API_KEY"]


def test_parallel_runs_are_indexed_and_permanent_errors_fail_the_job_at_once():
    assert "completionMode" not in _job()["spec"]
    parallel = _job(parallelism=4)["spec"]
    assert parallel["completionMode"] == "Indexed" and parallel["completions"] == parallel["parallelism"] == 4
    rules = parallel["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "evaluator", "operator": "In", "values": [2]},
    }


def test_each_run_has_its_own_evaluator_identity_owned_by_it_granting_configmaps_only():
    spec = qualificationrun.QualificationRunSpec.model_validate(yaml.safe_load(EXAMPLE.read_text())["spec"])
    sa, role, binding = manifests.evaluator_identity(namespace="ns", run_name="r", run_uid="u-1", spec=spec)
    assert {obj["metadata"]["name"] for obj in (sa, role, binding)} == {"assay-eval-r"}
    assert all(obj["metadata"]["ownerReferences"][0]["uid"] == "u-1" for obj in (sa, role, binding))
    assert {resource for rule in role["rules"] for resource in rule["resources"]} == {"configmaps"}
    assert "secrets" not in str(role["rules"])
    # Nothing it may change but its own shard status: no update, no delete, patch by name only.
    assert [rule.get("resourceNames") for rule in role["rules"] if "patch" in rule["verbs"]] == [["r-shard-0"]]
    assert not {"update", "delete"} & {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]


def test_evaluator_images_come_from_the_allow_list(monkeypatch):
    monkeypatch.setenv(manifests.ENV_EVALUATOR_IMAGE, "ghcr.io/assay-dev/assay:1.2.3")
    monkeypatch.setenv(manifests.ENV_ALLOWED_IMAGES, "registry.corp/assay:, registry.corp/team/eval@sha256:ab")
    allowed = manifests.allowed_images()
    assert allowed == ["ghcr.io/assay-dev/assay:1.2.3", "registry.corp/assay:", "registry.corp/team/eval@sha256:ab"]
    for image in ("ghcr.io/assay-dev/assay:1.2.3", "registry.corp/assay:2.0", "registry.corp/team/eval@sha256:ab"):
        assert manifests.image_allowed(image, allowed), image
    for image in ("ghcr.io/assay-dev/assay:latest", "evil.example/assay:1.2.3", "registry.corp/assay-evil:1"):
        assert not manifests.image_allowed(image, allowed), image


def test_a_recreated_job_gets_the_next_name_which_counts_the_lost_ones():
    assert manifests.job_name("run") == "run-eval"
    assert [manifests.job_name("run", recreation=n) for n in (1, 2)] == ["run-eval-r1", "run-eval-r2"]
    assert [manifests.job_recreation(name) for name in (None, "run-eval", "run-eval-r1", "run-eval-r12")] == [
        0,
        0,
        1,
        12,
    ]
    assert manifests.job_recreation("run-eval-r2-eval") == 0, "a run named like a recreated Job is still its first"


def test_job_names_stay_within_a_label_value_and_end_without_a_dash():
    long = "a" * 50 + "-" + "b" * 30
    for recreation in (0, 1, 3):
        name = manifests.job_name(long, recreation=recreation)
        assert len(name) <= 62 and manifests.job_recreation(name) == recreation
    assert manifests.job_name("x" * 56 + "-yy") == "x" * 56 + "-eval"

"""`kubectl assay` against a real kube-apiserver, without the operator running: promote, rollback and requalify
set the annotations the operator acts on, status lists what is there, and report reads a run's evidence
ConfigMaps and recomputes its verdict."""

from __future__ import annotations

import io
import json
import pathlib

import pytest
import yaml
from kubernetes import client

from assay import GROUP, VERSION
from assay import kube as assay_kube
from assay.api import qualificationrun
from assay.controllers import handle_qualificationrun
from assay.evaluator import kube as evidence_store
from assay.qualification import decision, simulate
from assay.report import command, plugin

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def kubeconfig(kube, monkeypatch):
    """The current kubeconfig is the test control plane's (assay.kube reads KUBECONFIG when first used)."""
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    assay_kube.api_client.cache_clear()
    yield kube
    assay_kube.api_client.cache_clear()


def _create(api_client, namespace: str, example: str) -> dict:
    body = yaml.safe_load((REPO / "examples" / example).read_text())
    plural = assay_kube.PLURALS[body["kind"]]
    return client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _annotations(api_client, namespace: str, name: str) -> dict:
    policy = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "routepolicies", name
    )
    return policy["metadata"].get("annotations") or {}


def _patch_status(api_client, namespace: str, plural: str, name: str, status: dict) -> None:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, {"status": status}
    )


def _cli(handler, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return handler(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_rollback_and_requalify_set_a_fresh_annotation_each_time(kubeconfig, namespace):
    api = kubeconfig.api_client()
    _create(api, namespace, "routepolicy-litellm.yaml")

    assert _cli(plugin.rollback, "support-summary", "-n", namespace)[0] == 0
    first = _annotations(api, namespace, "support-summary")["assay.dev/rollback"]
    status, out, _ = _cli(plugin.rollback, "support-summary", "-n", namespace)
    second = _annotations(api, namespace, "support-summary")["assay.dev/rollback"]
    assert _cli(plugin.requalify, "support-summary", "-n", namespace)[0] == 0

    annotations = _annotations(api, namespace, "support-summary")
    assert status == 0 and f"assay.dev/rollback={second}" in out
    assert first != second, "a repeated rollback must be a new value, or the operator ignores it"
    assert annotations["assay.dev/rollback"] == second
    assert annotations["assay.dev/requalify"].endswith("Z")


def test_promote_names_a_candidate_or_the_best_one(kubeconfig, namespace):
    api = kubeconfig.api_client()
    _create(api, namespace, "routepolicy-litellm.yaml")

    refused = _cli(plugin.promote, "support-summary", "-n", namespace)
    assert _cli(plugin.promote, "support-summary", "tiny", "-n", namespace)[0] == 0
    named = _annotations(api, namespace, "support-summary")["assay.dev/promote"]
    _patch_status(api, namespace, "routepolicies", "support-summary", {"bestCandidate": "mini"})
    assert _cli(plugin.promote, "support-summary", "-n", namespace)[0] == 0
    best = _annotations(api, namespace, "support-summary")["assay.dev/promote"]
    unknown = _cli(plugin.promote, "support-summary", "huge", "-n", namespace)

    assert refused[0] == 2 and "no qualified candidate yet" in refused[2]
    assert (named.split("@")[0], best.split("@")[0]) == ("tiny", "best")
    assert unknown[0] == 2 and "its candidates: mini, tiny" in unknown[2]
    assert _annotations(api, namespace, "support-summary")["assay.dev/promote"] == best


def test_commands_on_a_missing_policy_fail_naming_it(kubeconfig, namespace):
    status, _, err = _cli(plugin.rollback, "nope", "-n", namespace)

    assert status == 2
    assert f"RoutePolicy {namespace}/nope: not found" in err


def _run_with_evidence(api_client, namespace: str) -> tuple[dict, list]:
    """The example QualificationRun with simulated evidence in its ConfigMaps, decided Passed in its status."""
    run = _create(api_client, namespace, "qualificationrun.yaml")
    name, uid = run["metadata"]["name"], run["metadata"]["uid"]
    records = simulate.simulate_evidence(300, simulate.Scenario(mu=0.58, control_rate=0.08), seed=11)
    sink = evidence_store.ConfigMapSink(client.CoreV1Api(api_client), namespace, name, uid, shard=0)
    for start in range(0, len(records), 100):
        sink.write_chunk([r.to_dict() for r in records[start : start + 100]])
    _patch_status(api_client, namespace, "qualificationruns", name, {"phase": "Passed", "reason": "NonInferior"})
    return run, records


def test_report_recomputes_a_runs_verdict_from_its_evidence_configmaps(kubeconfig, namespace, tmp_path):
    api = kubeconfig.api_client()
    run, records = _run_with_evidence(api, namespace)
    spec = qualificationrun.QualificationRunSpec.model_validate(run["spec"])
    expected = decision.decide(records, handle_qualificationrun.test_settings(spec))

    status, out, err = _cli(command.main, run["metadata"]["name"], "-n", namespace, "--format", "json")
    html_status, _, _ = _cli(command.main, run["metadata"]["name"], "-n", namespace, "-o", str(tmp_path / "r.html"))

    data = json.loads(out)
    assert status == 0, err
    assert (data["verdict"], data["reason"]) == (expected.verdict, expected.reason) == ("passed", "NonInferior")
    assert data["stats"]["records"] == expected.stats["records"]
    assert data["settings"]["max_samples"] == 400  # the run's spec, not the defaults
    assert data["recorded_status"]["phase"] == "Passed"
    assert data["available_records"] == len(records)
    assert html_status == 0 and 'id="plot-bounds"' in (tmp_path / "r.html").read_text()


def test_report_of_a_missing_run_says_so(kubeconfig, namespace):
    status, out, err = _cli(command.main, "nope", "-n", namespace)

    assert status == 2 and out == ""
    assert f"QualificationRun {namespace}/nope: not found" in err


def test_status_lists_policies_and_runs_of_the_namespace(kubeconfig, namespace):
    api = kubeconfig.api_client()
    _create(api, namespace, "routepolicy-litellm.yaml")
    _patch_status(api, namespace, "routepolicies", "support-summary", {"phase": "Qualifying"})
    _run_with_evidence(api, namespace)

    status, out, _ = _cli(plugin.status, "-n", namespace)
    one, only_policy, _ = _cli(plugin.status, "support-summary", "-n", namespace)

    lines = out.splitlines()
    assert status == 0 and one == 0
    assert lines[1].split()[:2] == ["support-summary", "Qualifying"]
    assert any(line.split()[:4] == ["mini-vs-4o", "-", "mini", "Passed"] for line in lines)
    assert "No QualificationRuns found." in only_policy  # the hand-made run belongs to no policy

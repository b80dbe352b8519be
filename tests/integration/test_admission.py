"""The CRDs, applied to a real kube-apiserver, accept every example and reject invalid resources at
admission with a message that names the offending field."""

from __future__ import annotations

import copy
import json
import pathlib
import ssl
import subprocess
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

pytestmark = pytest.mark.integration

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
GROUP, VERSION = "assay.dev", "v1alpha1"


def _example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def _create(kube, namespace: str, body: dict[str, Any], *, dry_run: bool = True) -> dict[str, Any]:
    api = client.CustomObjectsApi(kube.api_client())
    plural = {"RoutePolicy": "routepolicies", "QualificationRun": "qualificationruns"}[body["kind"]]
    return api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body, dry_run="All" if dry_run else None
    )


@pytest.mark.parametrize("path", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_is_accepted(kube, namespace, path):
    for doc in yaml.safe_load_all((EXAMPLES / path).read_text()):
        if doc and doc.get("apiVersion") == f"{GROUP}/{VERSION}":
            created = _create(kube, namespace, doc)
            assert created["metadata"]["name"] == doc["metadata"]["name"]


def test_defaults_are_applied_by_the_apiserver(kube, namespace):
    created = _create(kube, namespace, _example("routepolicy-litellm.yaml"))
    spec = created["spec"]
    assert spec["qualification"]["test"]["minSamples"] == 50
    assert spec["qualification"]["test"]["margin"] == 0.05
    assert spec["qualification"]["execution"]["concurrency"] == 8
    assert spec["promotion"]["strategy"] == "Direct"
    assert spec["qualification"]["dataset"]["onInvalidLine"] == "Skip"


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is _DELETE:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


_DELETE = object()

# (case id, example, edits [(dotted path, value)], text the rejection must contain)
INVALID = [
    ("missing-baseline", "routepolicy-litellm.yaml", [("spec.baseline", _DELETE)], "spec.baseline"),
    ("empty-candidates", "routepolicy-litellm.yaml", [("spec.candidates", [])], "spec.candidates"),
    ("missing-candidates", "routepolicy-litellm.yaml", [("spec.candidates", _DELETE)], "spec.candidates"),
    (
        "margin-zero",
        "routepolicy-litellm.yaml",
        [("spec.qualification.test.margin", 0)],
        "spec.qualification.test.margin",
    ),
    (
        "margin-half",
        "routepolicy-litellm.yaml",
        [("spec.qualification.test.margin", 0.5)],
        "spec.qualification.test.margin",
    ),
    (
        "margin-negative",
        "routepolicy-litellm.yaml",
        [("spec.qualification.test.margin", -0.1)],
        "spec.qualification.test.margin",
    ),
    ("alpha-zero", "routepolicy-litellm.yaml", [("spec.qualification.test.alpha", 0)], "spec.qualification.test.alpha"),
    (
        "alpha-too-big",
        "routepolicy-litellm.yaml",
        [("spec.qualification.test.alpha", 0.6)],
        "spec.qualification.test.alpha",
    ),
    (
        "judge-is-baseline",
        "routepolicy-litellm.yaml",
        [("spec.qualification.judge.model", "gpt-4o")],
        "spec.qualification.judge.model",
    ),
    (
        "judge-is-candidate",
        "routepolicy-litellm.yaml",
        [("spec.qualification.judge.model", "tiny-llm")],
        "spec.qualification.judge.model",
    ),
    ("candidate-is-baseline", "routepolicy-litellm.yaml", [("spec.candidates.0.model", "gpt-4o")], "spec.candidates"),
    (
        "negative-input-price",
        "routepolicy-litellm.yaml",
        [("spec.pricing.0.inputPerMillion", -1)],
        "spec.pricing[0].inputPerMillion",
    ),
    (
        "negative-output-price",
        "routepolicy-litellm.yaml",
        [("spec.pricing.1.outputPerMillion", -0.5)],
        "spec.pricing[1].outputPerMillion",
    ),
    ("unknown-gateway-kind", "routepolicy-litellm.yaml", [("spec.gateway.kind", "Nginx")], "spec.gateway.kind"),
    (
        "max-below-min-samples",
        "routepolicy-litellm.yaml",
        [("spec.qualification.test.maxSamples", 10)],
        "spec.qualification.test.maxSamples",
    ),
    (
        "configmap-gateway-without-ref",
        "routepolicy-litellm.yaml",
        [("spec.gateway.configMapRef", _DELETE)],
        "spec.gateway.configMapRef",
    ),
    (
        "envoy-gateway-without-route",
        "routepolicy-envoy-canary.yaml",
        [("spec.gateway.routeRef", _DELETE)],
        "spec.gateway.routeRef",
    ),
    (
        "admin-gateway-without-url",
        "routepolicy-litellm.yaml",
        [("spec.gateway.kind", "LiteLLMAdminAPI")],
        "spec.gateway.url",
    ),
    (
        "dataset-two-sources",
        "routepolicy-litellm.yaml",
        [("spec.qualification.dataset.url", "https://x.example/d.jsonl")],
        "spec.qualification.dataset",
    ),
    (
        "dataset-no-source",
        "routepolicy-litellm.yaml",
        [("spec.qualification.dataset.configMapRef", _DELETE)],
        "spec.qualification.dataset",
    ),
    (
        "canary-steps-not-ending-at-100",
        "routepolicy-envoy-canary.yaml",
        [("spec.promotion.steps", [10, 50])],
        "spec.promotion.steps",
    ),
    (
        "canary-steps-descending",
        "routepolicy-envoy-canary.yaml",
        [("spec.promotion.steps", [50, 10, 100])],
        "spec.promotion.steps",
    ),
    (
        "canary-step-above-100",
        "routepolicy-envoy-canary.yaml",
        [("spec.promotion.steps", [10, 150])],
        "spec.promotion.steps[1]",
    ),
    (
        "duplicate-candidate-names",
        "routepolicy-litellm.yaml",
        [("spec.candidates.1.name", "mini")],
        "spec.candidates[1]",
    ),
    (
        "endpoint-not-http",
        "routepolicy-litellm.yaml",
        [("spec.qualification.endpoint.url", "ftp://x")],
        "spec.qualification.endpoint.url",
    ),
    (
        "control-share-too-big",
        "routepolicy-litellm.yaml",
        [("spec.qualification.test.controlShare", 0.9)],
        "spec.qualification.test.controlShare",
    ),
    (
        "parallelism-zero",
        "routepolicy-litellm.yaml",
        [("spec.qualification.execution.parallelism", 0)],
        "spec.qualification.execution.parallelism",
    ),
    (
        "regex-format-without-pattern",
        "routepolicy-litellm.yaml",
        [("spec.qualification.format", {"type": "Regex"})],
        "spec.qualification.format.pattern",
    ),
    (
        "bad-invalid-line-policy",
        "routepolicy-litellm.yaml",
        [("spec.qualification.dataset.onInvalidLine", "Ignore")],
        "spec.qualification.dataset.onInvalidLine",
    ),
    (
        "secret-ref-without-key",
        "routepolicy-litellm.yaml",
        [("spec.qualification.endpoint.apiKeySecretRef", {"name": "k"})],
        "spec.qualification.endpoint.apiKeySecretRef.key",
    ),
    ("duplicate-pricing", "routepolicy-litellm.yaml", [("spec.pricing.1.model", "gpt-4o")], "spec.pricing"),
    (
        "candidate-name-uppercase",
        "routepolicy-litellm.yaml",
        [("spec.candidates.0.name", "Mini")],
        "spec.candidates[0].name",
    ),
    ("run-judge-is-candidate", "qualificationrun.yaml", [("spec.judge.model", "gpt-4o-mini")], "spec.judge.model"),
    (
        "run-candidate-is-baseline",
        "qualificationrun.yaml",
        [("spec.candidate.model", "gpt-4o")],
        "spec.candidate.model",
    ),
    ("run-missing-dataset", "qualificationrun.yaml", [("spec.dataset", _DELETE)], "spec.dataset"),
]


@pytest.mark.parametrize(("case", "example", "edits", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resource_is_rejected_naming_the_field(kube, namespace, case, example, edits, field):
    doc = copy.deepcopy(_example(example))
    for path, value in edits:
        _set(doc, path, value)
    with pytest.raises(client.ApiException) as caught:
        _create(kube, namespace, doc)
    assert caught.value.status == 422, caught.value.body
    message = json.loads(caught.value.body)["message"]
    assert field in message, message


def test_run_spec_is_immutable(kube, namespace):
    api = client.CustomObjectsApi(kube.api_client())
    _create(kube, namespace, _example("qualificationrun.yaml"), dry_run=False)
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "qualificationruns", "mini-vs-4o")
    current["spec"]["test"]["maxSamples"] = 900
    with pytest.raises(client.ApiException) as caught:
        api.replace_namespaced_custom_object(GROUP, VERSION, namespace, "qualificationruns", "mini-vs-4o", current)
    assert "immutable" in json.loads(caught.value.body)["message"]


def test_table_api_shows_the_printer_columns(kube, namespace):
    _create(kube, namespace, _example("routepolicy-litellm.yaml"), dry_run=False)
    response = httpx.get(
        f"{kube.plane.url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/routepolicies",
        headers={
            "Authorization": f"Bearer {kube.plane.token}",
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io",
        },
        verify=ssl.create_default_context(cafile=str(kube.plane.ca_file)),
    )
    table = response.json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:7] == ["Name", "Phase", "Active", "Candidate", "Lower-Bound", "Savings", "Age"]
    assert table["rows"][0]["cells"][0] == "support-summary"


def test_kubectl_explain_teaches_the_fields(kube):
    result = subprocess.run(
        [str(kube.bin_dir / "kubectl"), "--kubeconfig", str(kube.kubeconfig), "explain", "routepolicy.spec"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "promptType" in result.stdout
    assert "The task this route serves" in result.stdout
    deep = subprocess.run(
        [
            str(kube.bin_dir / "kubectl"),
            "--kubeconfig",
            str(kube.kubeconfig),
            "explain",
            "routepolicy.spec.qualification.test.margin",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Non-inferiority margin" in deep.stdout

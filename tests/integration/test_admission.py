"""The CRDs, applied to a real kube-apiserver, accept every example and reject invalid resources at
admission with a message that names the offending field.

HOSTILE_CASES is hostile and careless input by class (the table in docs/testing.md; its counts are kept equal by
tests/unit/api/test_hostile_table.py): every case rejected, the field named and what is allowed said."""

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
    (
        "outcome-query-without-window",
        "routepolicy-litellm.yaml",
        [("spec.outcome", {"name": "resolved ticket", "query": "sum(tickets_resolved_total)"})],
        "spec.outcome.query",
    ),
    (
        "outcome-name-blank",
        "routepolicy-litellm.yaml",
        [("spec.outcome", {"name": " ", "query": "sum(increase(tickets_resolved_total[$window]))"})],
        "spec.outcome.name",
    ),
    ("budget-zero", "routepolicy-litellm.yaml", [("spec.budget", {"dailyUsd": 0})], "spec.budget.dailyUsd"),
    ("budget-negative", "routepolicy-litellm.yaml", [("spec.budget", {"monthlyUsd": -10})], "spec.budget.monthlyUsd"),
    ("budget-empty", "routepolicy-litellm.yaml", [("spec.budget", {"action": "RollBack"})], "spec.budget.dailyUsd"),
    (
        "budget-window-not-shorter",
        "routepolicy-litellm.yaml",
        [("spec.budget", {"burnRate": {"window": "2h", "baseline": "1h"}})],
        "spec.budget.burnRate.window",
    ),
    (
        "budget-window-not-a-duration",
        "routepolicy-litellm.yaml",
        [("spec.budget", {"burnRate": {"window": "five minutes"}})],
        "spec.budget.burnRate.window",
    ),
    ("budget-on-httproute", "routepolicy-httproute.yaml", [("spec.budget", {"dailyUsd": 5})], "spec.budget"),
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
    shown = ["Name", "Phase", "Active", "Candidate", "Lower-Bound", "Savings", "Spend/1d", "Realized", "Month-End"]
    assert columns[:10] == [*shown, "Age"]
    wide = {c["name"]: c.get("priority", 0) for c in table["columnDefinitions"]}
    assert wide.get("Realized") == 1, "the realized saving shows with -o wide"
    assert wide.get("Month-End") == 1, "so does the month-end forecast"
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


Edits = list[tuple[str, Any]]
POLICY, CANARY, RUN = "routepolicy-litellm.yaml", "routepolicy-envoy-canary.yaml", "qualificationrun.yaml"

# Every URL field assay calls, with the edits that make the URL the only thing in play.
URL_FIELDS: list[tuple[str, str, Edits]] = [
    (
        POLICY,
        "spec.gateway.url",
        [("spec.gateway.kind", "LiteLLMAdminAPI"), ("spec.gateway.masterKeySecretRef", {"name": "m", "key": "k"})],
    ),
    (POLICY, "spec.qualification.endpoint.url", []),
    (POLICY, "spec.qualification.judge.endpoint.url", []),
    (POLICY, "spec.qualification.dataset.url", [("spec.qualification.dataset.configMapRef", _DELETE)]),
    (RUN, "spec.endpoint.url", []),
    (RUN, "spec.judge.endpoint.url", []),
    (RUN, "spec.dataset.url", [("spec.dataset.configMapRef", _DELETE)]),
]
HOSTILE_URLS: list[tuple[str, str, str]] = [
    ("metadata-ipv4", "http://169.254.169.254/latest/meta-data/", "link-local, cloud-metadata"),
    ("metadata-ipv6", "http://[fd00:ec2::254]/latest/", "link-local, cloud-metadata"),
    ("metadata-alibaba", "http://100.100.100.200/latest/", "link-local, cloud-metadata"),
    ("link-local-ipv6", "http://[fe80::1]:4000/", "link-local, cloud-metadata"),
    ("ipv6-zone", "http://[fe80::1%25eth0]:4000/", "IPv6 address plainly"),
    ("ipv4-mapped", "http://[::ffff:169.254.169.254]/", "IPv6 address plainly"),
    ("decimal-ip", "http://2852039166/", "four decimal numbers"),
    ("hex-ip", "http://0xa9fea9fe/", "four decimal numbers"),
    ("octal-ip", "http://0251.0376.0251.0376/", "four decimal numbers"),
    ("unspecified", "http://0.0.0.0:4000/", "link-local, cloud-metadata"),
    ("multicast", "http://224.0.0.251/", "link-local, cloud-metadata"),
    ("metadata-hostname", "http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
    ("credentials", "http://user:key@litellm.llm.svc:4000/v1", "must not carry credentials"),
    ("user-only", "https://key@datasets.example.com/d.jsonl", "must not carry credentials"),
    ("crlf", "http://litellm.llm.svc:4000/v1\r\nX-Injected: 1", "control characters"),
    ("space", "http://litellm.llm.svc:4000/v 1", "control characters"),
    ("no-host", "http://", "must name a host"),
    ("no-host-path", "http:///v1", "must name a host"),
    ("not-http", "ftp://datasets.example.com/d.jsonl", "http:// or https://"),
    ("relative", "litellm.llm.svc:4000/v1", "http:// or https://"),
]

LONG_VALUE = "x" * (1024 * 1024)

# (class, case id, example, edits, field the message must name, text the message must contain)
Case = tuple[str, str, str, Edits, str, str]
HOSTILE_CASES: list[Case] = [
    ("Requests to anywhere", f"{field}={url_id}", example, [*edits, (field, url)], field, message)
    for example, field, edits in URL_FIELDS
    for url_id, url, message in HOSTILE_URLS
]
DATA_KEY = "must be a data key"
HOSTILE_CASES += [
    (
        "Paths",
        "dataset-path-dotdot",
        POLICY,
        [
            ("spec.qualification.dataset.configMapRef", _DELETE),
            ("spec.qualification.dataset.path", "/data/../etc/passwd"),
        ],
        "spec.qualification.dataset.path",
        "'..'",
    ),
    (
        "Paths",
        "dataset-path-trailing-dotdot",
        POLICY,
        [("spec.qualification.dataset.configMapRef", _DELETE), ("spec.qualification.dataset.path", "/data/..")],
        "spec.qualification.dataset.path",
        "'..'",
    ),
    (
        "Paths",
        "dataset-path-relative",
        POLICY,
        [("spec.qualification.dataset.configMapRef", _DELETE), ("spec.qualification.dataset.path", "data/d.jsonl")],
        "spec.qualification.dataset.path",
        "absolute path",
    ),
    (
        "Paths",
        "dataset-path-newline",
        RUN,
        [("spec.dataset.configMapRef", _DELETE), ("spec.dataset.path", "/data/d.jsonl\n")],
        "spec.dataset.path",
        "control characters",
    ),
    (
        "Paths",
        "configmap-key-traversal",
        POLICY,
        [("spec.qualification.dataset.configMapRef.key", "../../etc/passwd")],
        "spec.qualification.dataset.configMapRef.key",
        DATA_KEY,
    ),
    (
        "Paths",
        "configmap-key-space-slash",
        POLICY,
        [("spec.qualification.dataset.configMapRef.key", "a b/../c")],
        "spec.qualification.dataset.configMapRef.key",
        DATA_KEY,
    ),
    (
        "Paths",
        "configmap-key-dotdot",
        RUN,
        [("spec.dataset.configMapRef.key", "..")],
        "spec.dataset.configMapRef.key",
        DATA_KEY,
    ),
    (
        "Paths",
        "configmap-key-dot",
        RUN,
        [("spec.dataset.configMapRef.key", ".")],
        "spec.dataset.configMapRef.key",
        DATA_KEY,
    ),
    (
        "Paths",
        "gateway-configmap-key-traversal",
        POLICY,
        [("spec.gateway.configMapRef.key", "../config.yaml")],
        "spec.gateway.configMapRef.key",
        DATA_KEY,
    ),
    (
        "Paths",
        "secret-key-traversal",
        POLICY,
        [("spec.qualification.endpoint.apiKeySecretRef.key", "../token")],
        "spec.qualification.endpoint.apiKeySecretRef.key",
        DATA_KEY,
    ),
    (
        "Paths",
        "master-key-traversal",
        POLICY,
        [
            ("spec.gateway.kind", "LiteLLMAdminAPI"),
            ("spec.gateway.url", "http://litellm.llm.svc:4000"),
            ("spec.gateway.masterKeySecretRef", {"name": "m", "key": "/etc/shadow"}),
        ],
        "spec.gateway.masterKeySecretRef.key",
        DATA_KEY,
    ),
]
SELECTOR = "spec.rollback.alertSelector"
HOSTILE_CASES += [
    (
        "Rules that can never match or pass",
        "in-without-values",
        POLICY,
        [(SELECTOR, {"matchExpressions": [{"key": "alertname", "operator": "In", "values": []}]})],
        f"{SELECTOR}.matchExpressions[0].values",
        "at least one value for In and NotIn",
    ),
    (
        "Rules that can never match or pass",
        "notin-without-values",
        POLICY,
        [(SELECTOR, {"matchLabels": {"route": "r"}, "matchExpressions": [{"key": "env", "operator": "NotIn"}]})],
        f"{SELECTOR}.matchExpressions[0].values",
        "at least one value for In and NotIn",
    ),
    (
        "Rules that can never match or pass",
        "exists-with-values",
        POLICY,
        [(SELECTOR, {"matchExpressions": [{"key": "alertname", "operator": "Exists", "values": ["x"]}]})],
        f"{SELECTOR}.matchExpressions[0].values",
        "empty for Exists and DoesNotExist",
    ),
    (
        "Rules that can never match or pass",
        "doesnotexist-with-values",
        POLICY,
        [
            (
                SELECTOR,
                {
                    "matchLabels": {"route": "r"},
                    "matchExpressions": [{"key": "env", "operator": "DoesNotExist", "values": ["x"]}],
                },
            )
        ],
        f"{SELECTOR}.matchExpressions[0].values",
        "empty for Exists and DoesNotExist",
    ),
    (
        "Rules that can never match or pass",
        "expression-key-not-a-label",
        POLICY,
        [(SELECTOR, {"matchExpressions": [{"key": "alert name", "operator": "Exists"}]})],
        f"{SELECTOR}.matchExpressions[0].key",
        "alert label name",
    ),
    (
        "Rules that can never match or pass",
        "expression-key-with-slash",
        POLICY,
        [(SELECTOR, {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "Exists"}]})],
        f"{SELECTOR}.matchExpressions[0].key",
        "alert label name",
    ),
    (
        "Rules that can never match or pass",
        "match-labels-key-not-a-label",
        POLICY,
        [(f"{SELECTOR}.matchLabels", {"1route": "support-summary"})],
        f"{SELECTOR}.matchLabels",
        "alert label name",
    ),
    (
        "Rules that can never match or pass",
        "match-labels-value-1mib",
        POLICY,
        [(f"{SELECTOR}.matchLabels.route", LONG_VALUE)],
        f"{SELECTOR}.matchLabels.route",
        "1024",
    ),
    (
        "Rules that can never match or pass",
        "expression-value-1mib",
        POLICY,
        [(SELECTOR, {"matchExpressions": [{"key": "alertname", "operator": "In", "values": [LONG_VALUE]}]})],
        f"{SELECTOR}.matchExpressions[0].values[0]",
        "1024",
    ),
    (
        "Rules that can never match or pass",
        "selector-of-exclusions-only",
        POLICY,
        [(SELECTOR, {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]})],
        SELECTOR,
        "must require something of an alert",
    ),
    (
        "Rules that can never match or pass",
        "empty-selector",
        POLICY,
        [(SELECTOR, {})],
        SELECTOR,
        "must require something of an alert",
    ),
    (
        "Rules that can never match or pass",
        "no-controls-but-min-controls",
        POLICY,
        [("spec.qualification.test.controlShare", 0), ("spec.qualification.test.minControls", 10)],
        "spec.qualification.test.controlShare",
        "controlShare must be above 0",
    ),
    (
        "Rules that can never match or pass",
        "run-no-controls-but-min-controls",
        RUN,
        [("spec.test.controlShare", 0)],
        "spec.test.controlShare",
        "controlShare must be above 0",
    ),
    (
        "Rules that can never match or pass",
        "canary-steps-equal",
        CANARY,
        [("spec.promotion.steps", [10, 10, 100])],
        "spec.promotion.steps",
        "strictly ascending",
    ),
    (
        "Rules that can never match or pass",
        "canary-steps-equal-last",
        CANARY,
        [("spec.promotion.steps", [50, 100, 100])],
        "spec.promotion.steps",
        "strictly ascending",
    ),
]
HOSTILE_CASES += [
    (
        "Names that break later",
        "policy-name-100",
        POLICY,
        [("metadata.name", "p" * 100)],
        "metadata.name",
        "at most 63 characters",
    ),
    (
        "Names that break later",
        "policy-name-64",
        POLICY,
        [("metadata.name", "p" * 64)],
        "metadata.name",
        "at most 63 characters",
    ),
    (
        "Names that break later",
        "run-name-100",
        RUN,
        [("metadata.name", "r" * 100)],
        "metadata.name",
        "at most 63 characters",
    ),
]
BLANK = "must not be blank"
HOSTILE_CASES += [
    (
        "Same thing twice",
        "candidates-same-model-no-prompt",
        POLICY,
        [("spec.candidates.1.model", "gpt-4o-mini")],
        "spec.candidates",
        "same model and systemPrompt",
    ),
    (
        "Same thing twice",
        "candidates-same-model-same-prompt",
        POLICY,
        [
            ("spec.candidates.1.model", "gpt-4o-mini"),
            ("spec.candidates.0.systemPrompt", "Be brief."),
            ("spec.candidates.1.systemPrompt", "Be brief."),
        ],
        "spec.candidates",
        "same model and systemPrompt",
    ),
    (
        "Same thing twice",
        "candidate-backend-is-baseline-backend",
        CANARY,
        [("spec.candidates.0.backend", "anthropic-sonnet")],
        "spec.candidates",
        "must differ from baseline.backend",
    ),
    (
        "Same thing twice",
        "candidate-default-backend-is-baseline-backend",
        CANARY,
        [("spec.candidates.0.backend", _DELETE), ("spec.baseline.backend", "claude-haiku")],
        "spec.candidates",
        "must differ from baseline.backend",
    ),
    (
        "Same thing twice",
        "backend-not-an-object-name",
        CANARY,
        [("spec.candidates.0.backend", "Haiku Backend")],
        "spec.candidates[0].backend",
        "backendRef name",
    ),
    (
        "Same thing twice",
        "judge-trailing-space",
        POLICY,
        [("spec.qualification.judge.model", "gpt-4o ")],
        "spec.qualification.judge.model",
        BLANK,
    ),
    (
        "Same thing twice",
        "judge-leading-space",
        POLICY,
        [("spec.qualification.judge.model", " tiny-llm")],
        "spec.qualification.judge.model",
        BLANK,
    ),
    ("Same thing twice", "run-judge-trailing-space", RUN, [("spec.judge.model", "gpt-4o ")], "spec.judge.model", BLANK),
    ("Same thing twice", "baseline-blank", POLICY, [("spec.baseline.model", "   ")], "spec.baseline.model", BLANK),
    (
        "Same thing twice",
        "candidate-control-character",
        POLICY,
        [("spec.candidates.0.model", "gpt-4o\u0000")],
        "spec.candidates[0].model",
        BLANK,
    ),
    (
        "Same thing twice",
        "candidate-newline",
        POLICY,
        [("spec.candidates.1.model", "gpt-4o\nmini")],
        "spec.candidates[1].model",
        BLANK,
    ),
    (
        "Same thing twice",
        "run-candidate-tab",
        RUN,
        [("spec.candidate.model", "gpt-4o\t")],
        "spec.candidate.model",
        BLANK,
    ),
    (
        "Same thing twice",
        "pricing-model-padded",
        POLICY,
        [("spec.pricing.0.model", "gpt-4o ")],
        "spec.pricing[0].model",
        BLANK,
    ),
]


@pytest.mark.parametrize(
    ("kind", "case", "example", "edits", "field", "text"), HOSTILE_CASES, ids=[f"{c[0]}:{c[1]}" for c in HOSTILE_CASES]
)
def test_hostile_input_is_rejected_naming_the_field(kube, namespace, kind, case, example, edits, field, text):
    doc = copy.deepcopy(_example(example))
    for path, value in edits:
        _set(doc, path, value)
    with pytest.raises(client.ApiException) as caught:
        _create(kube, namespace, doc)
    assert caught.value.status == 422, caught.value.body
    message = json.loads(caught.value.body)["message"]
    assert field in message, message
    assert text in message, message
    assert LONG_VALUE not in message  # the apiserver truncates the echo of the value


LEGITIMATE: list[tuple[str, str, Edits]] = [
    ("loopback-for-local-use", POLICY, [("spec.qualification.endpoint.url", "http://127.0.0.1:4000/v1")]),
    ("ipv6-loopback", POLICY, [("spec.qualification.endpoint.url", "http://[::1]:4000/v1")]),
    ("pod-ip", RUN, [("spec.endpoint.url", "http://10.0.12.7:4000/v1")]),
    (
        "outcome-query",
        POLICY,
        [("spec.outcome", {"name": "resolved ticket", "query": 'sum(increase(t_total{q="a"}[$window]))'})],
    ),
    (
        "budget-every-limit",
        POLICY,
        [
            (
                "spec.budget",
                {
                    "dailyUsd": 50,
                    "monthlyUsd": 900,
                    "burnRate": {"factor": 5, "window": "30s", "baseline": "90m", "for": "0"},
                    "action": "ShiftToQualified",
                    "dryRun": True,
                },
            )
        ],
    ),
    ("cluster-dns", POLICY, [("spec.qualification.endpoint.url", "https://litellm.llm.svc.cluster.local/v1")]),
    (
        "presigned-dataset",
        POLICY,
        [
            ("spec.qualification.dataset.configMapRef", _DELETE),
            (
                "spec.qualification.dataset.url",
                "https://bucket.s3.amazonaws.com/d.jsonl?X-Amz-Signature=abc%40def&X-Amz-Credential=a%2Fb",
            ),
        ],
    ),
    ("at-sign-in-path", RUN, [("spec.endpoint.url", "http://litellm.llm.svc:4000/v1/@team")]),
    (
        "one-model-two-prompts",
        POLICY,
        [
            ("spec.candidates.1.model", "gpt-4o-mini"),
            ("spec.candidates.0.systemPrompt", "Be brief."),
            ("spec.candidates.1.systemPrompt", "Answer in one sentence."),
        ],
    ),
    ("name-63", POLICY, [("metadata.name", "p" * 63)]),
    ("dotted-data-key", POLICY, [("spec.qualification.dataset.configMapRef.key", "prompts.v2.jsonl")]),
    ("relative-looking-dots-in-path", RUN, [("spec.dataset.configMapRef", _DELETE), ("spec.dataset.path", "/d/..x/a")]),
    (
        "exclusion-with-a-pin",
        POLICY,
        [
            (
                SELECTOR,
                {
                    "matchLabels": {"route": "r"},
                    "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}],
                },
            )
        ],
    ),
    (
        "no-controls-no-minimum",
        POLICY,
        [("spec.qualification.test.controlShare", 0), ("spec.qualification.test.minControls", 0)],
    ),
]


@pytest.mark.parametrize(("case", "example", "edits"), LEGITIMATE, ids=[c[0] for c in LEGITIMATE])
def test_legitimate_neighbours_of_hostile_input_are_accepted(kube, namespace, case, example, edits):
    doc = copy.deepcopy(_example(example))
    for path, value in edits:
        _set(doc, path, value)
    assert _create(kube, namespace, doc)["metadata"]["name"] == doc["metadata"]["name"]

"""The chart's RBAC is least privilege, checked against the code: its Roles hold exactly the verbs assay's
code calls (read from the source by rbac_scan, not listed a second time here), no wildcards, Secrets readable
one by one only, no verb that lets the operator widen its own rights, cluster mode with a ClusterRole,
namespaced mode with a Role in each listed namespace, and the operator holds every permission it grants the
evaluator (Kubernetes refuses a Role that grants more than its creator holds)."""

from __future__ import annotations

import pytest
import rbac_scan
from chart_harness import CI_VALUES, grants, of_kind, one, render

from assay.api import qualificationrun
from assay.controllers import manifests

NEEDED = rbac_scan.scan()
# The leader Lease and the webhook Service's EndpointSlice live in the release's namespace (the leader Role).
IN_RELEASE_NAMESPACE = {grant for grant in NEEDED if grant[1] in ("leases", "endpointslices")}
IN_WATCHED_NAMESPACES = set(NEEDED) - IN_RELEASE_NAMESPACE
CRD_SCAN = rbac_scan.KOPF_CRD_SCAN
NAMESPACE_SCAN = rbac_scan.KOPF_NAMESPACE_SCAN
# Verbs that would let the operator give itself (or anyone) more than it holds.
WIDENING = {"bind", "escalate", "impersonate", "*"}


def _rules(docs, kind):
    return [rule for doc in of_kind(docs, kind) for rule in doc["rules"]]


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_no_rule_uses_a_wildcard(rendered, values):
    rules = _rules(rendered[values], "ClusterRole") + _rules(rendered[values], "Role")
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule[field]), f"wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule
        # Names only narrow: the leader Lease and the webhook's EndpointSlice (the leader Role).
        assert "resourceNames" not in rule or rule["resources"] in (["leases"], ["endpointslices"])


def _leader_role(docs):
    return next(role for role in of_kind(docs, "Role") if role["metadata"]["name"].endswith("-leader"))


def _watch_roles(docs):
    return [role for role in of_kind(docs, "Role") if not role["metadata"]["name"].endswith("-leader")]


def test_leader_role_holds_its_lease_and_the_webhook_endpoint_by_name_in_the_release_namespace(default):
    role = _leader_role(default)
    assert role["metadata"]["namespace"] == "assay-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["assay"],
            "verbs": ["get", "update", "patch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "resourceNames": ["assay-webhook"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = next(b for b in of_kind(default, "RoleBinding") if b["metadata"]["name"] == "assay-leader")
    assert binding["roleRef"]["name"] == "assay-leader"


def test_cluster_mode_grants_exactly_what_the_operator_needs_cluster_wide(default):
    assert _watch_roles(default) == []
    cluster_role = one(default, "ClusterRole")
    assert grants(cluster_role["rules"]) == IN_WATCHED_NAMESPACES | CRD_SCAN
    binding = one(default, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    service_account = one(default, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account["metadata"]["name"], "namespace": "assay-system"}
    ]


def test_namespaced_mode_has_a_role_in_each_namespace_and_only_kopfs_scans_cluster_wide(rendered):
    docs = rendered["namespaced-values"]
    roles = {role["metadata"]["namespace"]: role for role in _watch_roles(docs)}
    assert set(roles) == {"team-a", "team-b"}
    for namespace, role in roles.items():
        assert grants(role["rules"]) == IN_WATCHED_NAMESPACES
        binding = next(b for b in of_kind(docs, "RoleBinding") if b["metadata"]["namespace"] == namespace)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
    assert grants(one(docs, "ClusterRole")["rules"]) == CRD_SCAN | NAMESPACE_SCAN


def test_secrets_are_read_by_name_never_listed_or_watched(default):
    secret_verbs = {verb for group, resource, verb in grants(_rules(default, "ClusterRole")) if resource == "secrets"}
    assert secret_verbs == {"get"}


def test_the_chart_grants_exactly_what_the_code_calls(default):
    granted = grants(one(default, "ClusterRole")["rules"]) | grants(_leader_role(default)["rules"])
    unused = granted - set(NEEDED) - CRD_SCAN
    missing = set(NEEDED) - granted
    assert not unused, f"granted, never called: {sorted(unused)}"
    assert not missing, "called, not granted: " + "; ".join(f"{g} by {NEEDED[g]}" for g in sorted(missing))
    assert grants(_leader_role(default)["rules"]) == IN_RELEASE_NAMESPACE


def test_the_scan_reads_the_calls_the_code_makes():
    # A few calls it must see, and where from: a typed call, a custom-object call through a variable, kopf's.
    assert "evaluator/kube.py" in " ".join(NEEDED[("", "configmaps", "create")])
    assert any("weighted_route.py" in where for where in NEEDED[("gateway.networking.k8s.io", "httproutes", "patch")])
    assert NEEDED[("assay.dev", "routepolicies", "watch")] == ["kopf"]
    assert ("", "pods", "get") not in NEEDED and ("", "configmaps", "delete") not in NEEDED


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_no_rule_lets_the_operator_widen_its_own_rights(rendered, values):
    rules = _rules(rendered[values], "ClusterRole") + _rules(rendered[values], "Role")
    assert not {verb for rule in rules for verb in rule["verbs"]} & WIDENING
    assert not {r for rule in rules for r in rule["resources"]} & {"clusterroles", "clusterrolebindings"}
    rbac_verbs = {v for rule in rules if rule["apiGroups"] == ["rbac.authorization.k8s.io"] for v in rule["verbs"]}
    assert rbac_verbs == {"create"}  # new Roles it can only fill with what it holds; existing ones it cannot touch


def _evaluator_role(**dataset: object) -> dict:
    spec = qualificationrun.QualificationRunSpec.model_validate(
        {
            "endpoint": {"url": "http://gateway:4000"},
            "baseline": {"model": "big"},
            "candidate": {"name": "small", "model": "small"},
            "dataset": dataset or {"configMapRef": {"name": "traffic", "key": "prompts.jsonl"}},
            "judge": {"model": "judge"},
            "execution": {"parallelism": 2},
        }
    )
    identity = manifests.evaluator_identity(namespace="team-a", run_name="run", run_uid="u", spec=spec)
    return next(obj for obj in identity if obj["kind"] == "Role")


def test_operator_holds_every_permission_it_grants_the_evaluator(default):
    held = grants(one(default, "ClusterRole")["rules"])
    missing = grants(_evaluator_role()["rules"]) - held
    assert not missing, f"the operator cannot create the evaluator's Role without {sorted(missing)}"


def test_the_evaluator_role_holds_exactly_what_the_evaluator_calls():
    evaluator_calls = set(rbac_scan.scan([rbac_scan.PRODUCT / "evaluator"], kopf=False))
    assert grants(_evaluator_role()["rules"]) == evaluator_calls
    # What it may change it names: its own shard status ConfigMaps; it reads by name only the dataset.
    rules = _evaluator_role()["rules"]
    assert {r["verbs"][0]: r.get("resourceNames") for r in rules if r.get("resourceNames")} == {
        "patch": ["run-shard-0", "run-shard-1"],
        "get": ["traffic"],
    }


def test_rbac_can_be_left_to_the_cluster_admin(helm):
    docs = render(helm, set_values=["rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=ops"])
    assert {d["kind"] for d in docs}.isdisjoint({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
    assert of_kind(docs, "ServiceAccount") == []
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"

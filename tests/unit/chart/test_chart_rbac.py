"""The chart's RBAC is least privilege: no wildcards, Secrets readable one by one only, cluster mode with a
ClusterRole, namespaced mode with a Role in each listed namespace, and the operator holds every permission it
grants the evaluator (Kubernetes refuses a Role that grants more than its creator holds)."""

from __future__ import annotations

import pytest
from chart_harness import CI_VALUES, grants, of_kind, one, render

from assay.controllers import manifests

# What the operator must be able to do in a namespace it watches, spelled out.
REQUIRED = {
    ("assay.dev", "routepolicies", "get list watch patch update create delete"),
    ("assay.dev", "qualificationruns", "get list watch patch update create delete"),
    ("assay.dev", "routepolicies/status", "get patch update"),
    ("assay.dev", "qualificationruns/status", "get patch update"),
    ("batch", "jobs", "get list watch create delete patch"),
    ("", "pods", "get list watch"),
    ("", "pods/log", "get"),
    ("", "configmaps", "get list watch create update patch delete"),
    ("", "secrets", "get"),
    ("", "events", "create patch"),
    ("events.k8s.io", "events", "create patch"),
    ("", "serviceaccounts", "get create"),
    ("rbac.authorization.k8s.io", "roles", "get create patch"),
    ("rbac.authorization.k8s.io", "rolebindings", "get create patch"),
    ("apps", "deployments", "get patch"),
    ("aigateway.envoyproxy.io", "aigatewayroutes", "get list watch patch update"),
    ("gateway.networking.k8s.io", "httproutes", "get list watch patch update"),
}
REQUIRED_GRANTS = {(group, resource, verb) for group, resource, verbs in REQUIRED for verb in verbs.split()}
CRD_SCAN = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("get", "list", "watch")}
# kopf lists and watches namespaces only when it is namespaced, to follow the listed namespaces.
NAMESPACE_SCAN = {("", "namespaces", "list"), ("", "namespaces", "watch")}


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
    assert grants(cluster_role["rules"]) == REQUIRED_GRANTS | CRD_SCAN
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
        assert grants(role["rules"]) == REQUIRED_GRANTS
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


def test_operator_holds_every_permission_it_grants_the_evaluator(default):
    held = grants(one(default, "ClusterRole")["rules"])
    evaluator_role = next(obj for obj in manifests.evaluator_identity("team-a") if obj["kind"] == "Role")
    missing = grants(evaluator_role["rules"]) - held
    assert not missing, f"the operator cannot create the evaluator's Role without {sorted(missing)}"


def test_rbac_can_be_left_to_the_cluster_admin(helm):
    docs = render(helm, set_values=["rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=ops"])
    assert {d["kind"] for d in docs}.isdisjoint({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
    assert of_kind(docs, "ServiceAccount") == []
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"

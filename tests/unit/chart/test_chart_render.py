"""The Helm chart lints strictly, renders valid objects with every CI values file, and runs the operator the
way the design asks: one replica, Recreate, restricted pod security, probes, and the evaluator on the same
image."""

from __future__ import annotations

import ipaddress
import json
import pathlib

import pytest
from chart_harness import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    REPO,
    HelmError,
    env_of,
    of_kind,
    one,
    operator_container,
    render,
    run_helm,
)

from assay import egress

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_helm_lint_strict_passes(helm, values):
    run_helm(helm, ["lint", "--strict", str(CHART), "--values", str(CI_VALUES[values]), "--kube-version", KUBE_VERSION])


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_every_rendered_object_is_named_and_namespaced_where_it_must_be(rendered, values):
    docs = rendered[values]
    assert {"Deployment", "ServiceAccount", "Service", "ClusterRole"} <= {d["kind"] for d in docs}
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace"), f"{doc['kind']}/{doc['metadata']['name']} has no namespace"


def test_chart_crds_are_the_generated_crds_byte_for_byte():
    generated = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "crds/ is empty"
    assert shipped == generated, "charts/assay/crds/ differs from crds/: cp crds/*.yaml charts/assay/crds/"


def test_operator_pod_runs_under_the_restricted_pod_security_standard(default):
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == 65532
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in operator_container(default)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "the read-only root needs a writable /tmp"
    assert "hostPath" not in str(volumes)


def test_operator_runs_a_leader_and_a_standby_that_roll_without_a_gap(helm, default):
    spec = one(default, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    env = env_of(operator_container(default))
    assert env["ASSAY_LEADER_ELECTION"] == "true"
    assert (env["ASSAY_LEASE_NAMESPACE"], env["ASSAY_LEASE_NAME"]) == ("assay-system", "assay")
    assert env["ASSAY_WEBHOOK_ENDPOINTSLICE"] == "assay-webhook"
    single = one(render(helm, set_values=["leaderElection.enabled=false", "replicaCount=1"]), "Deployment")["spec"]
    assert single["strategy"] == {"type": "Recreate"}
    assert "ASSAY_LEADER_ELECTION" not in env_of(next(c for c in single["template"]["spec"]["containers"]))


def _probe(container: dict, probe: str) -> tuple[str, int]:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check = container[probe]["httpGet"]
    return check["path"], ports[check["port"]]


def test_operator_is_live_while_its_loop_answers_and_ready_once_its_alert_index_is_warm(helm, default):
    container = operator_container(default)
    assert container["args"][0] == "operator"
    assert "--health-port=8081" in container["args"]
    assert _probe(container, "livenessProbe") == ("/healthz", 8081)
    assert _probe(container, "readinessProbe") == ("/readyz", 8081)
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_evaluator_jobs_run_the_operator_image(helm):
    for sets, image in [
        ([], "ghcr.io/assay-dev/assay:0.1.0"),
        (["image.repository=assay", "image.tag=dev"], "assay:dev"),
        (["image.digest=sha256:" + "a" * 64], "ghcr.io/assay-dev/assay@sha256:" + "a" * 64),
    ]:
        container = operator_container(render(helm, set_values=sets))
        assert container["image"] == image
        assert env_of(container)["ASSAY_EVALUATOR_IMAGE"] == image


def test_webhook_token_comes_from_the_generated_secret(default):
    container = operator_container(default)
    assert "--webhook-port=8443" in container["args"]
    ref = env_of(container)["ASSAY_WEBHOOK_TOKEN"]["secretKeyRef"]
    secret = one(default, "Secret")
    assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], "token")
    assert len(secret["data"]["token"]) >= 48, "a generated token of 48 random characters (base64)"


def test_existing_webhook_secret_is_used_and_none_is_generated(rendered):
    docs = rendered["namespaced-values"]
    assert of_kind(docs, "Secret") == []
    ref = env_of(operator_container(docs))["ASSAY_WEBHOOK_TOKEN"]["secretKeyRef"]
    assert ref == {"name": "assay-alertmanager-token", "key": "bearer"}


def test_disabling_the_webhook_removes_its_port_token_and_secret(helm):
    docs = render(helm, set_values=["webhook.enabled=false"])
    container = operator_container(docs)
    assert not any(arg.startswith("--webhook-port") for arg in container["args"])
    assert "ASSAY_WEBHOOK_TOKEN" not in env_of(container)
    assert of_kind(docs, "Secret") == []
    assert [p["name"] for p in one(docs, "Service")["spec"]["ports"]] == ["http-metrics"]


def _service(docs, name):
    return next(s for s in of_kind(docs, "Service") if s["metadata"]["name"] == name)


def test_metrics_reach_every_replica_and_the_webhook_only_the_leader(default):
    service = _service(default, "assay")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http-metrics": (8080, "http-metrics")}
    pod_labels = one(default, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    webhook = _service(default, "assay-webhook")
    assert "selector" not in webhook["spec"], "its endpoints are the leader's, written by the leader"
    assert [(p["name"], p["port"]) for p in webhook["spec"]["ports"]] == [("http-webhook", 8443)]
    endpoint_slice = one(default, "EndpointSlice")
    assert endpoint_slice["metadata"]["name"] == "assay-webhook"
    assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "assay-webhook"
    assert endpoint_slice["endpoints"] == []


def test_webhook_node_port_is_set_for_kind(helm):
    docs = render(helm, set_values=["service.type=NodePort", "service.webhookNodePort=30843"])
    ports = {p["name"]: p for p in _service(docs, "assay-webhook")["spec"]["ports"]}
    assert ports["http-webhook"]["nodePort"] == 30843
    assert "nodePort" not in {p["name"]: p for p in _service(docs, "assay")["spec"]["ports"]}["http-metrics"]


def test_namespaced_mode_starts_the_operator_with_its_namespaces(rendered, default):
    assert env_of(operator_container(rendered["namespaced-values"]))["ASSAY_NAMESPACES"] == "team-a,team-b"
    assert "ASSAY_NAMESPACES" not in env_of(operator_container(default))


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("replicaCount=two", "/replicaCount"),
        ("replicaCount=6", "/replicaCount"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("webhook.port=70000", "/webhook/port"),
        ("replicas=1", "replicas"),
        ("monitoring.serviceMonitor.enable=true", "enable"),
        ("webhook.tls.enabled=yes", "/webhook/tls/enabled"),
        ("webhook.tls.secretName=Not_A_Name", "/webhook/tls/secretName"),
        ("webhook.tls.certManager.duration=90days", "/webhook/tls/certManager/duration"),
        ("webhook.tls.certManager.issuer=x", "issuer"),
        ("spend.prometheus.url=prometheus:9090", "/spend/prometheus/url"),
        ("spend.intervalSeconds=5", "/spend/intervalSeconds"),
        ("spend.prometheus.token=abc", "token"),
    ],
)
def test_values_schema_rejects_bad_values(helm, assignment, complaint):
    with pytest.raises(HelmError, match="values don't meet the specifications of the schema") as failure:
        render(helm, set_values=[assignment])
    assert complaint in str(failure.value)


def test_values_schema_is_strict_at_every_level():
    def walk(node: dict, where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{where or '/'} accepts unknown keys"
            for key, child in node["properties"].items():
                walk(child, f"{where}/{key}")

    walk(json.loads(pathlib.Path(CHART / "values.schema.json").read_text()), "")


def test_egress_values_reach_the_operator_as_the_policy_it_enforces(helm, default):
    assert egress.EgressPolicy.from_env(env_of(operator_container(default))) == egress.EgressPolicy(
        allowed_networks=tuple(
            ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
        )
    )
    docs = render(
        helm,
        set_values=[
            "egress.allowedCIDRs={10.96.0.0/12}",
            "egress.allowedHosts={.svc.cluster.local,litellm.example}",
            "egress.allowLoopback=true",
        ],
    )
    assert egress.EgressPolicy.from_env(env_of(operator_container(docs))) == egress.EgressPolicy(
        allowed_networks=(ipaddress.ip_network("10.96.0.0/12"),),
        allowed_hosts=frozenset({".svc.cluster.local", "litellm.example"}),
        allow_loopback=True,
    )


def test_evaluator_image_allow_list_reaches_the_operator(helm, default):
    assert env_of(operator_container(default))["ASSAY_EVALUATOR_ALLOWED_IMAGES"] == ""
    docs = render(helm, set_values=["evaluator.allowedImages={registry.corp/assay:,registry.corp/x@sha256:ab}"])
    assert (
        env_of(operator_container(docs))["ASSAY_EVALUATOR_ALLOWED_IMAGES"]
        == "registry.corp/assay:,registry.corp/x@sha256:ab"
    )


def test_spend_reads_no_prometheus_unless_a_url_is_given(default):
    env = env_of(operator_container(default))
    assert not {"ASSAY_PROMETHEUS_URL", "ASSAY_PROMETHEUS_TOKEN_FILE", "ASSAY_PROMETHEUS_TOKEN"} & set(env)


def test_spend_prometheus_url_interval_and_token_file_reach_the_operator(helm):
    docs = render(
        helm,
        set_values=[
            "spend.prometheus.url=http://prometheus.monitoring.svc:9090",
            "spend.prometheus.bearerTokenSecret.name=prometheus-reader",
            "spend.prometheus.bearerTokenSecret.key=bearer",
            "spend.intervalSeconds=120",
        ],
    )
    container = operator_container(docs)
    env = env_of(container)
    assert env["ASSAY_PROMETHEUS_URL"] == "http://prometheus.monitoring.svc:9090"
    assert env["ASSAY_SPEND_INTERVAL"] == "120"
    assert env["ASSAY_PROMETHEUS_TOKEN_FILE"] == "/var/run/assay/prometheus/token"
    assert "ASSAY_PROMETHEUS_TOKEN" not in env, "the token is a mounted file, never an env value in the pod spec"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "prometheus-token")
    assert (mount["mountPath"], mount["readOnly"]) == ("/var/run/assay/prometheus", True)
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    secret = next(v for v in volumes if v["name"] == "prometheus-token")["secret"]
    assert secret["secretName"] == "prometheus-reader"
    assert secret["items"] == [{"key": "bearer", "path": "token"}]

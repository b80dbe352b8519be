"""The alert webhook serves TLS by default: the chart mounts a kubernetes.io/tls Secret (given, or written by
cert-manager) read-only into the operator and points the operator at its files; without a certificate source the
render fails naming the value; the probes stay plain HTTP on their own port."""

from __future__ import annotations

import re

import pytest
from chart_harness import HelmError, env_of, of_kind, one, operator_container, render

from assay.alerts import transport

MOUNT = "/etc/assay/webhook-tls"
CERT_MANAGER = ["webhook.tls.certManager.enabled=true", "webhook.tls.certManager.issuerRef.name=assay-ca"]


def _tls_volume(docs: list[dict]) -> tuple[dict, dict]:
    """(the webhook-tls volume, its mount in the operator container)."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    mount = next(m for m in operator_container(docs)["volumeMounts"] if m["name"] == "webhook-tls")
    return volume, mount


def test_tls_is_on_by_default_and_mounts_the_given_secret_read_only(helm):
    docs = render(helm, values_files=[], set_values=["webhook.tls.secretName=my-webhook-tls"])
    volume, mount = _tls_volume(docs)
    assert volume["secret"]["secretName"] == "my-webhook-tls"
    assert {item["key"] for item in volume["secret"]["items"]} == {"tls.crt", "tls.key"}
    assert (mount["mountPath"], mount["readOnly"]) == (MOUNT, True)
    env = env_of(operator_container(docs))
    assert env[transport.ENV_TLS_CERT] == f"{MOUNT}/tls.crt"
    assert env[transport.ENV_TLS_KEY] == f"{MOUNT}/tls.key"
    assert of_kind(docs, "Certificate") == []
    webhook = next(s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "assay-webhook")
    assert webhook["spec"]["ports"][0]["appProtocol"] == "https"


def test_probes_stay_plain_http_on_their_own_port_with_tls_on(default):
    container = operator_container(default)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert ports[check["port"]] == 8081 != ports["http-webhook"]
        assert check.get("scheme", "HTTP") == "HTTP"


def test_tls_on_without_a_certificate_source_fails_the_render_naming_the_value(helm):
    complaint = re.escape("webhook.tls.enabled is true but no certificate is given")
    with pytest.raises(HelmError, match=complaint) as failure:
        render(helm, values_files=[])
    for named in ("webhook.tls.secretName", "webhook.tls.certManager.enabled", "webhook.tls.enabled=false"):
        assert named in str(failure.value)


def test_cert_manager_without_an_issuer_fails_the_render_naming_the_value(helm):
    with pytest.raises(HelmError, match=re.escape("webhook.tls.certManager.issuerRef.name is empty")):
        render(helm, values_files=[], set_values=["webhook.tls.certManager.enabled=true"])


def test_cert_manager_certificate_covers_the_webhook_service_names_and_is_mounted(helm):
    docs = render(helm, values_files=[], namespace="monitoring-ops", set_values=CERT_MANAGER)
    certificate = one(docs, "Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["metadata"]["namespace"] == "monitoring-ops"
    assert certificate["spec"]["dnsNames"] == [
        "assay-webhook",
        "assay-webhook.monitoring-ops",
        "assay-webhook.monitoring-ops.svc",
        "assay-webhook.monitoring-ops.svc.cluster.local",
    ]
    assert certificate["spec"]["issuerRef"] == {"name": "assay-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert "server auth" in certificate["spec"]["usages"]
    volume, _ = _tls_volume(docs)
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"] == "assay-webhook-tls"


def test_cert_manager_writes_into_the_named_secret_and_a_cluster_issuer_can_sign(helm):
    docs = render(
        helm,
        values_files=[],
        set_values=[
            *CERT_MANAGER,
            "webhook.tls.secretName=webhook-cert",
            "webhook.tls.certManager.issuerRef.kind=ClusterIssuer",
        ],
    )
    certificate = one(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "webhook-cert" == _tls_volume(docs)[0]["secret"]["secretName"]
    assert certificate["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


@pytest.mark.parametrize(
    "sets",
    [
        ["webhook.tls.secretName=given"],
        ["webhook.tls.enabled=false", *CERT_MANAGER],
        ["webhook.enabled=false", *CERT_MANAGER],
    ],
    ids=["secret-name", "tls-off", "webhook-off"],
)
def test_no_certificate_is_rendered_unless_cert_manager_is_enabled_for_a_tls_webhook(helm, sets):
    assert of_kind(render(helm, values_files=[], set_values=sets), "Certificate") == []


def test_tls_off_serves_plain_http_and_mounts_nothing(helm):
    docs = render(helm, values_files=[], set_values=["webhook.tls.enabled=false"])
    env = env_of(operator_container(docs))
    assert transport.ENV_TLS_CERT not in env and transport.ENV_TLS_KEY not in env
    assert "webhook-tls" not in {v["name"] for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}


def test_disabling_the_webhook_needs_no_certificate(helm):
    docs = render(helm, values_files=[], set_values=["webhook.enabled=false"])
    assert transport.ENV_TLS_CERT not in env_of(operator_container(docs))

"""The rendered Helm chart against a real kube-apiserver: every object passes server-side dry-run apply; the
operator's RBAC, applied for real, allows what it needs and denies the rest (`kubectl auth can-i` as the
chart's ServiceAccount), including creating the evaluator's Role, which Kubernetes allows only to a creator
holding every permission the Role grants; and `assay operator`, started with the Deployment's args and env
under that ServiceAccount's token, runs without a single refused request."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import pathlib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

import realparts
from assay.alerts import transport
from assay.api import qualificationrun
from assay.controllers import manifests
from assaylab import controlplane, tls
from conftest import wait_for
from unit.chart import chart_harness

pytestmark = pytest.mark.integration

EXAMPLE = chart_harness.REPO / "examples" / "routepolicy-litellm.yaml"

_release_ids = itertools.count()


def _kubectl(
    kube: Any, args: list[str], *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    command = [str(kube.bin_dir / "kubectl"), "--kubeconfig", str(kube.kubeconfig), *args]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result


def _yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.fixture(scope="module")
def helm() -> pathlib.Path:
    return chart_harness.helm_binary()


@pytest.mark.parametrize("values", sorted(chart_harness.CI_VALUES))
def test_rendered_chart_passes_server_side_dry_run_apply(kube, helm, values):
    # No Prometheus Operator CRDs here, so ServiceMonitor and PrometheusRule stay gated off.
    release_namespace = kube.create_namespace(f"assay-{values}")
    docs = chart_harness.render(helm, namespace=release_namespace, values_files=[chart_harness.CI_VALUES[values]])
    for namespace in {d["metadata"].get("namespace") for d in docs} - {None}:
        kube.create_namespace(namespace)
    result = _kubectl(kube, ["apply", "--server-side", "--dry-run=server", "-f", "-"], stdin=_yaml(docs))
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(docs), result.stdout


def _install_rbac(kube: Any, helm: pathlib.Path, **render_args: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Render a fresh release, apply its ServiceAccount and RBAC for real; returns (release namespace,
    ServiceAccount user name, all rendered objects)."""
    release = f"rbac{next(_release_ids)}"
    namespace = kube.create_namespace(f"{release}-system")
    docs = chart_harness.render(helm, release=release, namespace=namespace, **render_args)
    rbac = [
        d for d in docs if d["kind"] in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ]
    _kubectl(kube, ["apply", "--server-side", "-f", "-"], stdin=_yaml(rbac))
    account = chart_harness.one(docs, "ServiceAccount")["metadata"]["name"]
    return namespace, f"system:serviceaccount:{namespace}:{account}", docs


def _can_i(kube: Any, user: str, verb: str, resource: str, *, namespace: str | None = None) -> bool:
    scope = ["--namespace", namespace] if namespace else []
    result = _kubectl(kube, ["auth", "can-i", verb, resource, f"--as={user}", *scope], check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, result.stderr
    return answer == "yes"


def test_cluster_mode_rbac_allows_what_the_operator_needs_and_denies_the_rest(kube, helm):
    # Gateway API and Envoy AI Gateway kinds are not served here (kubectl resolves names by discovery):
    # tests/unit/chart checks their rules.
    _, user, _ = _install_rbac(kube, helm)
    team = kube.create_namespace("rbac-cluster-team")
    allowed = [
        ("watch", "routepolicies.assay.dev"),
        ("patch", "qualificationruns.assay.dev/status"),
        ("create", "jobs.batch"),
        ("create", "configmaps"),
        ("get", "secrets"),
        ("create", "events"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("patch", "deployments.apps"),
    ]
    denied = [
        ("list", "secrets"),
        ("watch", "secrets"),
        ("delete", "pods"),
        ("create", "pods"),
        ("get", "pods/log"),
        ("delete", "configmaps"),
        ("update", "configmaps"),
        ("create", "routepolicies.assay.dev"),
        ("delete", "qualificationruns.assay.dev"),
        ("patch", "jobs.batch"),
        ("get", "roles.rbac.authorization.k8s.io"),
        ("delete", "deployments.apps"),
        ("create", "deployments.apps"),
        ("delete", "roles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ]
    assert [check for check in allowed if not _can_i(kube, user, *check, namespace=team)] == []
    assert [check for check in denied if _can_i(kube, user, *check, namespace=team)] == []
    assert _can_i(kube, user, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not _can_i(kube, user, "list", "namespaces")


def test_namespaced_mode_rbac_stops_at_the_listed_namespaces(kube, helm):
    watched = [kube.create_namespace("rbac-ns-watched-a"), kube.create_namespace("rbac-ns-watched-b")]
    elsewhere = kube.create_namespace("rbac-ns-elsewhere")
    _, user, _ = _install_rbac(kube, helm, set_values=[f"watchNamespaces={{{','.join(watched)}}}"])
    for namespace in watched:
        assert _can_i(kube, user, "create", "configmaps", namespace=namespace)
        assert _can_i(kube, user, "watch", "qualificationruns.assay.dev", namespace=namespace)
    assert not _can_i(kube, user, "create", "configmaps", namespace=elsewhere)
    assert not _can_i(kube, user, "get", "secrets", namespace=elsewhere)
    assert not _can_i(kube, user, "list", "routepolicies.assay.dev", namespace=elsewhere)
    assert _can_i(kube, user, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert _can_i(kube, user, "watch", "namespaces")
    assert not _can_i(kube, user, "get", "namespaces")


def test_operator_identity_can_create_the_evaluator_service_account_role_and_binding(kube, helm):
    _, user, _ = _install_rbac(kube, helm)
    team = kube.create_namespace("rbac-evaluator-team")
    spec = qualificationrun.QualificationRunSpec.model_validate(
        yaml.safe_load((chart_harness.REPO / "examples" / "qualificationrun.yaml").read_text())["spec"]
    )
    identity = manifests.evaluator_identity(namespace=team, run_name="mini-vs-4o", run_uid="0" * 36, spec=spec)
    # Without their owner reference: owned by a run that does not exist, the garbage collector deleted the
    # RoleBinding while kubectl was still creating it (seen in a full run). Ownership is not what this checks.
    for obj in identity:
        obj["metadata"].pop("ownerReferences", None)
    # The operator creates these objects (POST); RBAC escalation prevention checks the Role's rules against
    # what the creating identity holds.
    result = _kubectl(kube, ["create", f"--as={user}", "-f", "-"], stdin=_yaml(identity))
    assert result.stdout.count("created") == len(identity), result.stdout
    evaluator = f"system:serviceaccount:{team}:{manifests.evaluator_account('mini-vs-4o')}"
    assert _can_i(kube, evaluator, "create", "configmaps", namespace=team)
    assert _can_i(kube, evaluator, "patch", "configmaps/mini-vs-4o-shard-0", namespace=team)
    assert not _can_i(kube, evaluator, "patch", "configmaps/litellm-config", namespace=team)
    assert not _can_i(kube, evaluator, "get", "secrets", namespace=team)


def _service_account_kubeconfig(kube: Any, user: str, path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig that authenticates with a fresh token of the chart's ServiceAccount, as the pod would."""
    _, _, namespace, account = user.split(":")
    token = _kubectl(kube, ["create", "token", account, "--namespace", namespace, "--duration=1h"]).stdout.strip()
    config = yaml.safe_load(kube.kubeconfig.read_text())
    for entry in config["users"]:
        entry["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


def _answers(url: str, *, timeout: float = 60, verify: ssl.SSLContext | bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, verify=verify).status_code == 200:
                return True
        time.sleep(0.3)
    return False


@dataclasses.dataclass
class ChartOperator:
    """`assay operator` as the chart's Deployment runs it, on loopback ports."""

    health_url: str
    webhook_url: str
    metrics_url: str
    webhook_token: str
    webhook_trust: ssl.SSLContext
    log_path: pathlib.Path


@contextlib.contextmanager
def _run_as_the_chart_does(
    kube: Any, helm: pathlib.Path, tmp_path: pathlib.Path, **render_args: Any
) -> Iterator[ChartOperator]:
    """Start `python -m assay` with the rendered container's args and plain env, the webhook token in place of
    its secretKeyRef, a self-signed certificate where the chart mounts the TLS Secret, ports moved to free loopback
    ones, and a token of the chart's ServiceAccount."""
    made = tls.self_signed(tmp_path)
    realparts.require("openssl", made, "install openssl (a prerequisite in the README)")
    assert made is not None
    cert, key = made
    _, user, docs = _install_rbac(kube, helm, **render_args)
    container = chart_harness.operator_container(docs)
    ports = {flag: controlplane.free_port() for flag in ("--metrics-port", "--webhook-port", "--health-port")}
    args = []
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        if flag in ports:
            value = str(ports[flag])
        args.append(f"{flag}={value}" if value else flag)
    token = "chart-test-webhook-token"
    env = {name: value for name, value in chart_harness.env_of(container).items() if isinstance(value, str)}
    mount = chart_harness.operator_container(docs)["volumeMounts"]
    tls_dir = next(m["mountPath"] for m in mount if m["name"] == "webhook-tls")
    assert (env[transport.ENV_TLS_CERT], env[transport.ENV_TLS_KEY]) == (f"{tls_dir}/tls.crt", f"{tls_dir}/tls.key")
    env |= {
        transport.ENV_TLS_CERT: str(cert),
        transport.ENV_TLS_KEY: str(key),
        "ASSAY_WEBHOOK_TOKEN": token,
        "ASSAY_BIND_HOST": "127.0.0.1",
        "KUBECONFIG": str(_service_account_kubeconfig(kube, user, tmp_path / "kubeconfig")),
    }
    running = ChartOperator(
        health_url=f"http://127.0.0.1:{ports['--health-port']}/leader",
        webhook_url=f"https://127.0.0.1:{ports['--webhook-port']}",
        metrics_url=f"http://127.0.0.1:{ports['--metrics-port']}/metrics",
        webhook_token=token,
        webhook_trust=ssl.create_default_context(cafile=str(cert)),
        log_path=tmp_path / "operator.log",
    )
    with running.log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "assay", *args], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield running
    finally:
        process.terminate()
        process.wait(30)


REFERENCES = """
apiVersion: v1
kind: ConfigMap
metadata: {name: support-summary-traffic}
data: {prompts.jsonl: "{}"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: litellm-config}
data: {config.yaml: "model_list: []"}
---
apiVersion: v1
kind: Secret
metadata: {name: litellm-keys}
stringData: {api-key: sk-test}
"""


def test_operator_runs_under_the_charts_identity_args_and_env(kube, helm, tmp_path):
    """In namespaced mode, with the chart's ServiceAccount, args and env, the operator becomes live and ready,
    reconciles a policy, takes an alert, and the API server never refuses it anything."""
    watched = kube.create_namespace("chart-identity-team")
    with _run_as_the_chart_does(kube, helm, tmp_path, set_values=[f"watchNamespaces={{{watched}}}"]) as running:
        assert _answers(running.health_url), running.log_path.read_text()[-3000:]
        assert _answers(running.webhook_url + "/healthz", verify=running.webhook_trust), running.log_path.read_text()[
            -3000:
        ]
        assert _answers(running.metrics_url)

        policy = yaml.safe_load(EXAMPLE.read_text())
        _kubectl(kube, ["create", "--namespace", watched, "-f", "-"], stdin=REFERENCES + "---\n" + _yaml([policy]))

        def conditions() -> dict[str, str]:
            found = _kubectl(kube, ["get", "routepolicy", policy["metadata"]["name"], "-n", watched, "-o", "yaml"])
            obj = yaml.safe_load(found.stdout)
            return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}

        wait_for(lambda: conditions().get("Ready") == "True", timeout=60, what="Ready=True")

        labels = {"alertname": "SomethingElse", "namespace": watched}
        firing = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2025-01-01T00:00:00Z"}
        alert = {"version": "4", "status": "firing", "receiver": "assay", "groupKey": "{}", "alerts": [firing]}
        url = running.webhook_url + "/alerts"
        trust = running.webhook_trust
        assert httpx.post(url, json=alert, timeout=10, verify=trust).status_code == 401
        bearer = {"Authorization": f"Bearer {running.webhook_token}"}
        answer = httpx.post(url, json=alert, headers=bearer, timeout=10, verify=trust)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ignored"]["unmatched"] == 1
    refused = [line for line in running.log_path.read_text().splitlines() if "forbidden" in line.lower()]
    assert refused == []


def test_helm_upgrade_keeps_the_webhook_token_and_the_notes_say_where_the_webhook_is(kube, helm):
    namespace = kube.create_namespace("chart-upgrade")
    release = [
        "chart-upgrade",
        str(chart_harness.CHART),
        "--namespace",
        namespace,
        "--kubeconfig",
        str(kube.kubeconfig),
        "--set",
        "webhook.tls.secretName=chart-upgrade-webhook-tls",
    ]

    def token() -> str:
        secret = _kubectl(kube, ["get", "secret", "chart-upgrade-assay-webhook", "-n", namespace, "-o", "yaml"])
        return str(yaml.safe_load(secret.stdout)["data"]["token"])

    installed = chart_harness.run_helm(helm, ["install", *release])
    try:
        first = token()
        upgraded = chart_harness.run_helm(helm, ["upgrade", *release, "--reuse-values", "--set", "logLevel=DEBUG"])
        assert token() == first
        assert "REVISION: 2" in upgraded
        for notes in (installed, upgraded):
            assert f"url: https://chart-upgrade-assay-webhook.{namespace}.svc:8443/alerts" in notes
            assert "ca_file: /etc/alertmanager/secrets/assay-webhook-ca/ca.crt" in notes
            assert f"kubectl get secret -n {namespace} chart-upgrade-assay-webhook" in notes
            assert "kubectl apply --server-side -f charts/assay/crds/" in notes
    finally:
        chart_harness.run_helm(
            helm, ["uninstall", "chart-upgrade", "--namespace", namespace, "--kubeconfig", str(kube.kubeconfig)]
        )

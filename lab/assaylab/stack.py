"""The whole loop on one machine, as the demo, the end-to-end tests and the benchmarks use it: a real control
plane, the LLM simulator, a real LiteLLM proxy in front of it, the local Job executor and the operator.

LiteLLM's config lives in a ConfigMap and a Deployment, as in a cluster. With no kubelet here, the stack plays
that Deployment: when the Deployment's pod template changes (assay rolls it after rewriting the config), the
local LiteLLM process is restarted with the ConfigMap's config, which is what a rollout would do.
"""

# The kubernetes client's generated stubs want model objects; this test tooling passes plain dicts.
# mypy: disable-error-code="arg-type,union-attr,index,assignment,attr-defined,unused-ignore"
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml
from kubernetes import client

from assaylab import controlplane
from assaylab import litellm as litellm_runner
from assaylab import simulator as sim

REPO = pathlib.Path(__file__).resolve().parents[2]
GROUP, VERSION = "assay.dev", "v1alpha1"
LITELLM_CONFIGMAP = "litellm-config"
LITELLM_DEPLOYMENT = "litellm"
LITELLM_KEY_SECRET = "litellm-keys"


def _api_client(kubeconfig: pathlib.Path) -> client.ApiClient:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def apply_crds(api: client.ApiClient, paths: Sequence[pathlib.Path], *, timeout: float = 60) -> None:
    """Create or replace CustomResourceDefinitions and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            names.append(doc["metadata"]["name"])
            try:
                ext.create_custom_resource_definition(doc)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                current = ext.read_custom_resource_definition(doc["metadata"]["name"])
                doc["metadata"]["resourceVersion"] = current.metadata.resource_version
                ext.replace_custom_resource_definition(doc["metadata"]["name"], doc)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            established = any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
            if established:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} is not Established")
            time.sleep(0.2)


class LiteLLMDeployment:
    """Plays the LiteLLM Deployment: runs the proxy with the ConfigMap's config and restarts it when the
    Deployment's pod template changes (a checksum annotation bump), as a rollout would."""

    def __init__(self, api: client.ApiClient, namespace: str, workdir: pathlib.Path) -> None:
        self.api = api
        self.namespace = namespace
        self.workdir = workdir
        self.proxy: litellm_runner.LiteLLMProxy | None = None
        self.restarts = 0
        self.last_restart_seconds: float | None = None
        self._template_hash: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _template(self) -> str:
        dep = client.AppsV1Api(self.api).read_namespaced_deployment(LITELLM_DEPLOYMENT, self.namespace)
        return json.dumps(self.api.sanitize_for_serialization(dep.spec.template), sort_keys=True)

    def _write_config(self) -> pathlib.Path:
        cm = client.CoreV1Api(self.api).read_namespaced_config_map(LITELLM_CONFIGMAP, self.namespace)
        path = self.workdir / "litellm-config.yaml"
        path.write_text(cm.data["config.yaml"])
        return path

    def start(self) -> None:
        self._template_hash = self._template()
        self.proxy = litellm_runner.LiteLLMProxy(self._write_config())
        self.proxy.start()
        self._thread = threading.Thread(target=self._watch, name="litellm-deployment", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            try:
                template = self._template()
            except Exception:  # the control plane may be going away
                continue
            if template != self._template_hash and self.proxy is not None:
                started = time.monotonic()
                self._write_config()
                try:
                    self.proxy.restart()
                except Exception:  # a slow start on a loaded machine: the next loop tries again
                    continue
                self._template_hash = template
                self.restarts += 1
                self.last_restart_seconds = time.monotonic() - started

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self.proxy:
            self.proxy.stop()


class LocalStack:
    """Everything the loop needs, started in dependency order and stopped in reverse."""

    def __init__(
        self,
        *,
        namespace: str = "assay-demo",
        models: Sequence[str] = ("gpt-4o", "gpt-4o-mini", "tiny-llm", "judge-large"),
        route: str = "support-summary",
        baseline: str = "gpt-4o",
        simulator_config: Any = None,
        workdir: pathlib.Path | None = None,
        operator: bool = True,
        executor: bool = True,
        reconcile_interval: float = 1.0,
        webhook_token: str | None = None,
        litellm_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.namespace = namespace
        self.models = list(models)
        self.route = route
        self.baseline = baseline
        self.simulator_config = simulator_config
        self._own_workdir = workdir is None
        self.workdir = workdir or pathlib.Path(tempfile.mkdtemp(prefix="assay-stack-"))
        self.with_operator = operator
        self.with_executor = executor
        self.webhook_token = webhook_token
        # Merged into the LiteLLM config's litellm_settings before the proxy first starts (callbacks, tags).
        self.litellm_settings = dict(litellm_settings or {})
        self.webhook_port: int | None = None
        self.reconcile_interval = reconcile_interval
        self._exit = contextlib.ExitStack()
        self.plane: controlplane.ControlPlane | None = None
        self.simulator: sim.BackgroundSimulator | None = None
        self.gateway: LiteLLMDeployment | None = None
        self.executor: Any = None
        self.operator: Any = None
        self.api: client.ApiClient | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.plane = controlplane.ControlPlane(controlplane.test_binaries(), workdir=self.workdir / "cp")
        self.plane.start()
        self._exit.callback(self.plane.stop)
        os.environ["KUBECONFIG"] = str(self.plane.kubeconfig)
        self.api = _api_client(self.plane.kubeconfig)
        apply_crds(self.api, sorted((REPO / "crds").glob("*.yaml")))
        core = client.CoreV1Api(self.api)
        core.create_namespace({"metadata": {"name": self.namespace}})

        self.simulator = sim.BackgroundSimulator(self.simulator_config)
        self.simulator.start()
        self._exit.callback(self.simulator.stop)

        config = litellm_runner.build_config(
            simulator_url=self.simulator.url, models=self.models, aliases={self.route: self.baseline}
        )
        config["litellm_settings"].update(self.litellm_settings)
        core.create_namespaced_config_map(
            self.namespace,
            {"metadata": {"name": LITELLM_CONFIGMAP}, "data": {"config.yaml": yaml.safe_dump(config, sort_keys=False)}},
        )
        core.create_namespaced_secret(
            self.namespace,
            {"metadata": {"name": LITELLM_KEY_SECRET}, "stringData": {"api-key": litellm_runner.TEST_MASTER_KEY}},
        )
        client.AppsV1Api(self.api).create_namespaced_deployment(self.namespace, _litellm_deployment())
        self.gateway = LiteLLMDeployment(self.api, self.namespace, self.workdir)
        self.gateway.start()
        self._exit.callback(self.gateway.stop)

        if self.with_executor:
            from assaylab import executor

            self.executor = executor.LocalExecutor(self.plane.kubeconfig, workdir=self.workdir / "pods")
            self.executor.start()
            self._exit.callback(self.executor.stop)

        if self.with_operator:
            self.start_operator()

    def start_operator(self) -> None:
        from assaylab.operator_process import OperatorProcess

        assert self.plane is not None
        if self.webhook_token and not self.webhook_port:
            self.webhook_port = controlplane.free_port()
        self.operator = OperatorProcess(
            self.plane.kubeconfig,
            log_path=self.workdir / "operator.log",
            reconcile_interval=self.reconcile_interval,
            webhook_port=self.webhook_port,
            webhook_token=self.webhook_token,
        )
        self.operator.start()
        self._exit.callback(self.operator.stop)

    def stop(self) -> None:
        self._exit.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------------------------

    @property
    def litellm_url(self) -> str:
        assert self.gateway is not None and self.gateway.proxy is not None
        return self.gateway.proxy.url

    def put_dataset(self, name: str, records: Sequence[Mapping[str, Any]], *, key: str = "prompts.jsonl") -> None:
        text = "".join(json.dumps(r) + "\n" for r in records)
        client.CoreV1Api(self.api).create_namespaced_config_map(
            self.namespace, {"metadata": {"name": name}, "data": {key: text}}
        )

    def policy(self, name: str, **overrides: Any) -> dict[str, Any]:
        """A RoutePolicy for the stack's LiteLLM route, with sensible local defaults."""
        spec: dict[str, Any] = {
            "promptType": self.route,
            "gateway": {
                "kind": "LiteLLMConfigMap",
                "configMapRef": {"name": LITELLM_CONFIGMAP, "key": "config.yaml"},
                "deploymentRef": {"name": LITELLM_DEPLOYMENT},
            },
            "baseline": {"model": self.baseline},
            "candidates": [{"name": "mini", "model": "gpt-4o-mini"}, {"name": "tiny", "model": "tiny-llm"}],
            "qualification": {
                "endpoint": {
                    "url": self.litellm_url + "/v1",
                    "apiKeySecretRef": {"name": LITELLM_KEY_SECRET, "key": "api-key"},
                },
                "dataset": {"configMapRef": {"name": "prompts", "key": "prompts.jsonl"}},
                "judge": {"model": "judge-large"},
                "execution": {"concurrency": 16, "chunkSize": 10},
            },
            "rollback": {"alertSelector": {"matchLabels": {"alertname": "LLMRouteQualityDrift", "route": self.route}}},
        }
        _merge(spec, overrides)
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RoutePolicy", "metadata": {"name": name}, "spec": spec}

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        plural = {"RoutePolicy": "routepolicies", "QualificationRun": "qualificationruns"}[obj["kind"]]
        result: dict[str, Any] = client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, dict(obj)
        )
        return result

    def get(self, kind: str, name: str) -> dict[str, Any]:
        plural = {"RoutePolicy": "routepolicies", "QualificationRun": "qualificationruns"}[kind]
        result: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return result

    def list_runs(self) -> list[dict[str, Any]]:
        result = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "qualificationruns"
        )
        return list(result.get("items", []))  # type: ignore[union-attr]


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _litellm_deployment() -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "litellm"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": LITELLM_DEPLOYMENT, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "litellm",
                            "image": "ghcr.io/berriai/litellm:main-v1.108.7",
                            "args": ["--config", "/etc/litellm/config.yaml"],
                        }
                    ]
                },
            },
        },
    }


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[LocalStack]:
    stack = LocalStack(**kwargs)
    try:
        yield stack.start()
    finally:
        stack.stop()

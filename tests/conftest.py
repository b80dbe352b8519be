"""Shared fixtures. The `kube` fixture is a real control plane (etcd + kube-apiserver +
kube-controller-manager) built from the Go module proxy by hack/testenv.sh, with assay's CRDs applied."""

from __future__ import annotations

import contextlib
import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from assaylab import controlplane
from assaylab import stack as local_stack
from assaylab.operator_process import LOOPBACK_EGRESS

REPO = pathlib.Path(__file__).resolve().parents[1]
CRD_DIR = REPO / "crds"
# Real parts a test needs: skipped when missing, a failure under CI. Loaded as a plugin, not imported here
# (imported first, pytest could not rewrite its asserts).
pytest_plugins = ["realparts"]
# Every server in the tests listens on loopback, which assay's egress rule refuses unless configured to allow it
# (the in-process operator hands it on to the evaluation Jobs it creates, as the chart's operator does).
os.environ.update(LOOPBACK_EGRESS)


class Kube:
    """A running control plane and clients for it."""

    def __init__(self, plane: controlplane.ControlPlane) -> None:
        self.plane = plane
        self.kubeconfig = plane.kubeconfig
        self.bin_dir = plane.bin_dir

    def api_client(self) -> Any:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def discard_namespace(self, name: str) -> None:
        """Delete a test's namespace and everything in it, assay's objects at once: deleted first (so no operator
        adds its finalizer back), then their finalizers dropped, as a test that ended cannot wait for an operator
        to hand routes back. Left behind, a module's operator would reconcile every earlier test's objects
        against gateways long gone (in a full run, hundreds of namespaces). Best effort: teardown never fails."""
        from kubernetes import client

        api = self.api_client()
        custom = client.CustomObjectsApi(api)
        for plural in ("routepolicies", "qualificationruns"):
            with contextlib.suppress(Exception):
                items = custom.list_namespaced_custom_object("assay.dev", "v1alpha1", name, plural)["items"]
                for item in items:
                    object_name = item["metadata"]["name"]
                    with contextlib.suppress(client.ApiException):
                        custom.delete_namespaced_custom_object("assay.dev", "v1alpha1", name, plural, object_name)
                    with contextlib.suppress(client.ApiException):
                        custom.patch_namespaced_custom_object(
                            "assay.dev", "v1alpha1", name, plural, object_name, {"metadata": {"finalizers": None}}
                        )
        with contextlib.suppress(Exception):
            client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")

    def apply_crds(self, paths: list[pathlib.Path], *, timeout: float = 60) -> None:
        """Create (or replace) CRDs and wait until each is Established."""
        local_stack.apply_crds(self.api_client(), paths, timeout=timeout)

    def create_namespace(self, name: str) -> str:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        with contextlib.suppress(client.ApiException):
            core.create_namespace({"metadata": {"name": name}})
        return name


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    """A real kube-apiserver + etcd + kube-controller-manager for the whole session, with assay's CRDs."""
    import realparts

    try:
        bin_dir = controlplane.test_binaries()
    except controlplane.ControlPlaneError as exc:
        realparts.require("the test binaries", False, f"run `bash hack/testenv.sh` (needs Go 1.24+): {exc}")
        raise
    plane = controlplane.ControlPlane(bin_dir)
    plane.start()
    try:
        cluster = Kube(plane)
        cluster.apply_crds(sorted(CRD_DIR.glob("*.yaml")))
        yield cluster
    finally:
        plane.stop()


_counter = iter(range(1_000_000))


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, discarded with its contents afterwards."""
    base = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower())[:40].strip("-")
    name = kube.create_namespace(f"t{next(_counter)}-{base}")
    yield name
    kube.discard_namespace(name)


class InProcessOperator:
    """The assay operator running in a thread of the test process, against the `kube` control plane."""

    def __init__(self) -> None:
        import threading

        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.thread: Any = None

    def start(self) -> InProcessOperator:
        import asyncio
        import threading

        from assay.controllers import runtime

        options = runtime.OperatorOptions(metrics_port=0)

        def _run() -> None:
            asyncio.run(runtime.operate(options, stop_flag=self.stop_flag, ready_flag=self.ready_flag))

        self.thread = threading.Thread(target=_run, name="assay-operator", daemon=True)
        self.thread.start()
        if not self.ready_flag.wait(60):
            raise TimeoutError("operator did not become ready")
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(30)


@pytest.fixture(scope="module")
def operator(kube: Kube) -> Iterator[InProcessOperator]:
    """The operator in-process (kopf in a thread), authenticating with the control plane's bearer token. Per
    module: it watches every namespace, so it must be gone before a module runs an operator process of its own."""
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    os.environ.setdefault("ASSAY_RECONCILE_INTERVAL", "1")
    os.environ.setdefault("ASSAY_ROUTE_CHECK_INTERVAL", "1")
    running = InProcessOperator().start()
    try:
        yield running
    finally:
        running.stop()


def wait_for(predicate: Any, *, timeout: float = 30, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll until predicate() returns something truthy; return it, or fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")

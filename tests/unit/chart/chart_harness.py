"""Rendering the Helm chart for tests: `helm` from hack/testenv.sh, `helm template` parsed into objects."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

import realparts
from assaylab import controlplane

REPO = pathlib.Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "assay"
CI_VALUES = {path.stem: path for path in sorted((CHART / "ci").glob("*.yaml"))}
# The chart's defaults and the one value they lack: the webhook's TLS Secret (without it the render fails).
DEFAULT_VALUES = (CI_VALUES["default-values"],)
# hack/testenv.sh builds helm from source, whose built-in default cluster version (v1.20) is older than the
# chart's kubeVersion; a released helm defaults to its own client-go version. Render for the tested cluster.
KUBE_VERSION = "1.34.4"
MONITORING_API = "monitoring.coreos.com/v1"


class HelmError(RuntimeError):
    """helm exited non-zero; the message holds its command and stderr."""


def helm_binary() -> pathlib.Path:
    """The helm that hack/testenv.sh built; skips the test (fails under CI: tests/realparts.py) when it has not
    been built."""
    try:
        helm = controlplane.test_binaries(build=False) / "helm"
    except controlplane.ControlPlaneError as exc:
        helm = pathlib.Path(f"<unavailable: {exc}>")
    realparts.require("helm", helm.is_file(), f"{helm} is not built: run `bash hack/testenv.sh`")
    return helm


def run_helm(helm: pathlib.Path, args: Sequence[str]) -> str:
    """Run helm; returns stdout, raises HelmError with stderr on failure."""
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result.stdout


def template_args(
    *,
    release: str = "assay",
    namespace: str = "assay-system",
    values_files: Iterable[pathlib.Path] = DEFAULT_VALUES,
    set_values: Iterable[str] = (),
    api_versions: Iterable[str] = (),
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    for assignment in set_values:
        args += ["--set", assignment]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render(helm: pathlib.Path, **kwargs: Any) -> list[dict[str, Any]]:
    """`helm template` of the chart (keyword arguments as template_args; values_files defaults to DEFAULT_VALUES,
    `[]` renders the bare defaults), parsed; empty documents dropped."""
    return [doc for doc in yaml.safe_load_all(run_helm(helm, template_args(**kwargs))) if doc]


def render_text(helm: pathlib.Path, **kwargs: Any) -> str:
    return run_helm(helm, template_args(**kwargs))


def of_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_container(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """The container's env as name -> value (or valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def grants(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a list of PolicyRules allows, spelled out."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }

"""Fixtures for the Helm chart's tests: the helm binary and the chart rendered with each CI values file."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from chart_harness import CI_VALUES, MONITORING_API, helm_binary, render


@pytest.fixture(scope="session")
def helm() -> pathlib.Path:
    return helm_binary()


@pytest.fixture(scope="session")
def rendered(helm: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """The chart rendered once per CI values file (with the monitoring API present), by file stem."""
    return {name: render(helm, values_files=[path], api_versions=[MONITORING_API]) for name, path in CI_VALUES.items()}


@pytest.fixture(scope="session")
def default(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["default-values"]

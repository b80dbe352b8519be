"""The one rule for a real part a test needs (LiteLLM, Prometheus, Alertmanager, Chromium, helm, promtool, openssl,
test binaries, the upstream CRDs): missing on a developer's machine, the test skips and says how to install
it; missing under CI (`CI` set to a true value), the test fails, because there `make test` installs
everything and a skip would hide a part that was never exercised.

    pytestmark = realparts.needs("LiteLLM", litellm.find_litellm(), "run hack/litellm.sh")  # a module
    realparts.require("helm", helm.is_file(), "run `bash hack/testenv.sh`")                  # in a fixture

`needs` marks are checked when each test is set up, before its fixtures start anything, never while modules
are collected: a failure there would stop the run before any test, and pytest's closing line would count
nothing. This module is the pytest plugin doing that (tests/conftest.py loads it: `pytest_plugins`).
"""

from __future__ import annotations

import os

import pytest

MARKER = "real_part"
_TRUE = {"1", "true", "yes", "on"}


def in_ci() -> bool:
    """True when the `CI` environment variable holds a true value (`true`, `1`, `yes`, `on`; any case)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def require(part: str, available: object, why: str) -> None:
    """Return when `available` is truthy; otherwise skip the current test, or fail it under CI.

    `why` says how to get the part (`run hack/litellm.sh`); it ends both the skip reason and the failure."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{part} is missing under CI, where `make test` installs it: {why}", pytrace=False)
    pytest.skip(f"{part} is missing: {why}")


def needs(part: str, available: object, why: str) -> pytest.MarkDecorator:
    """A mark for a module or a test: `require(part, available, why)` when each test is set up."""
    return getattr(pytest.mark, MARKER)(part=part, available=bool(available), why=why)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(part, available, why): made by realparts.needs")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every `needs` mark of a test, before its fixtures are set up (so no server starts for nothing)."""
    for mark in item.iter_markers(MARKER):
        require(mark.kwargs["part"], mark.kwargs["available"], mark.kwargs["why"])

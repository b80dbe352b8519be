"""A missing real part skips a test on a developer's machine and fails it under CI (tests/realparts.py)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import realparts

TESTS = pathlib.Path(realparts.__file__).parent


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes", "on"])
def test_ci_set_to_a_true_value_turns_a_missing_part_into_a_failure(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"helm is missing under CI.*run hack/testenv.sh"):
        realparts.require("helm", None, "run hack/testenv.sh")


@pytest.mark.parametrize("value", [None, "", "false", "0", "no"])
def test_without_ci_a_missing_part_skips_with_how_to_install_it(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"LiteLLM is missing: run hack/litellm.sh"):
        realparts.require("LiteLLM", None, "run hack/litellm.sh")


@pytest.mark.parametrize("ci", ["true", ""])
def test_an_available_part_neither_skips_nor_fails(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    realparts.require("Chromium", "/usr/bin/chromium", "run hack/debian-packages.sh")


def _run_pytest(tmp_path: pathlib.Path, *, ci: str) -> subprocess.CompletedProcess[str]:
    """A module marked with `realparts.needs` for a part that is missing, run by its own pytest."""
    (tmp_path / "test_needs_a_part.py").write_text(
        "import realparts\n"
        "pytestmark = realparts.needs('Prometheus', None, 'run hack/debian-packages.sh')\n"
        "def test_uses_prometheus():\n"
        "    raise AssertionError('must not run without Prometheus')\n"
        "def test_also_uses_prometheus():\n"
        "    raise AssertionError('must not run without Prometheus')\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "realparts", "-p", "no:cacheprovider", "-ra", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_under_ci_a_marked_module_errors_each_test_and_the_closing_line_counts_them(tmp_path):
    result = _run_pytest(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Prometheus is missing under CI, where `make test` installs it: run hack/debian-packages.sh" in result.stdout
    assert "must not run" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("2 errors in "), result.stdout


def test_without_ci_a_marked_module_skips_each_test_and_the_closing_line_counts_them(tmp_path):
    result = _run_pytest(tmp_path, ci="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Prometheus is missing: run hack/debian-packages.sh" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("2 skipped in "), result.stdout


# Skips that are not about a missing part: an `assay operator` process cannot share the control plane with
# the in-process operator of tests/conftest.py (a guard; that fixture is stopped after each module using it).
NOT_A_PART = {"integration/test_crd_adapters_operator.py", "integration/test_webhook_limits.py"}


def test_tests_skip_for_a_missing_part_only_through_realparts():
    skipping = re.compile(r"pytest\.skip\(|mark\.skipif\(|importorskip\(")
    offenders = sorted(
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path.name != "realparts.py" and path.resolve() != pathlib.Path(__file__).resolve()
        if skipping.search(path.read_text())
    )
    assert set(offenders) <= NOT_A_PART, "use realparts.needs / realparts.require (tests/realparts.py)"

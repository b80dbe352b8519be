"""The pre-commit config runs the checks `make lint` and `make crds-check` run, offline: every hook is local
and calls a tool of the project's venv (or bash), so installing the hooks downloads nothing."""

from __future__ import annotations

import pathlib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())


def test_every_hook_is_local_and_runs_a_venv_tool_or_bash():
    assert [repo["repo"] for repo in CONFIG["repos"]] == ["local"]
    hooks = CONFIG["repos"][0]["hooks"]
    assert {hook["language"] for hook in hooks} == {"system"}
    assert all(hook["entry"].startswith((".venv/bin/", "bash ")) for hook in hooks), [h["entry"] for h in hooks]


def test_the_hooks_are_the_lint_and_freshness_checks_of_make_test():
    entries = " | ".join(hook["entry"] for hook in CONFIG["repos"][0]["hooks"])
    for command in ("ruff check", "ruff format", "mypy", "assay.api.crdgen --check", "assay.api.docgen --check"):
        assert command in entries

"""`assay budget-rules` / `kubectl assay budget-rules`: the Prometheus alert rules of RoutePolicies' spec.budget.

Reads the policies from the cluster (`-n`, `-A`) or from YAML files (`-f`, e.g. before applying them), and prints
a Prometheus rule file (`groups:`, for a plain Prometheus's `rule_files`) or, with `--format prometheusrule`,
PrometheusRule objects for the Prometheus Operator (`kubectl apply -f -`). Their alerts go to the operator's
webhook through Alertmanager (docs/spend.md, "Budgets"). A policy whose budget cannot be rendered (a gateway
without spend metrics, an unpriced model) is an error on stderr naming it, and exit code 2.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

import pydantic
import yaml

from assay.api import routepolicy
from assay.spend import budget_rules

EXIT_OK, EXIT_FAILED = 0, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assay budget-rules", description="Print the Prometheus alert rules of RoutePolicies' spec.budget."
    )
    parser.add_argument("-f", "--filename", action="append", default=[], help="RoutePolicy YAML file(s) to read")
    parser.add_argument("-n", "--namespace", help="RoutePolicies of this namespace (default: the context's)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="RoutePolicies of every namespace")
    parser.add_argument(
        "--format",
        choices=("rules", "prometheusrule"),
        default="rules",
        help="rules: a Prometheus rule file; prometheusrule: PrometheusRule objects (Prometheus Operator)",
    )
    return parser


def _from_files(paths: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in paths:
        for document in yaml.safe_load_all(pathlib.Path(path).read_text()):
            if isinstance(document, Mapping) and document.get("kind") == "RoutePolicy":
                meta = dict(document.get("metadata") or {})
                meta.setdefault("namespace", "default")
                meta.setdefault("uid", "")
                found.append({**document, "metadata": meta})
    return found


def render(policies: Iterable[Mapping[str, Any]], *, fmt: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(documents to print, errors naming each policy that could not be rendered)."""
    groups: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    errors: list[str] = []
    for body in policies:
        meta = body.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            spec = routepolicy.RoutePolicySpec.model_validate(body.get("spec") or {})
            group = budget_rules.rule_group(str(meta.get("namespace")), str(meta.get("name")), spec)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            errors.append(f"{where}: spec.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
            continue
        except budget_rules.Unsupported as exc:
            errors.append(f"{where}: spec.budget: {exc}")
            continue
        if group is None:
            continue
        groups.append(group)
        objects.append(budget_rules.prometheus_rule(body, group))
    return ([{"groups": groups}] if fmt == "rules" else objects), errors


def main(argv: Sequence[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(list(argv))
    if args.filename:
        policies = _from_files(args.filename)
    else:
        from assay.report import cluster

        namespace = None if args.all_namespaces else (args.namespace or cluster.current_namespace())
        try:
            policies = cluster.list_objects("RoutePolicy", namespace)
        except cluster.ClusterError as exc:
            print(f"assay budget-rules: {exc}", file=err)
            return EXIT_FAILED
    documents, errors = render(policies, fmt=args.format)
    for error in errors:
        print(f"assay budget-rules: {error}", file=err)
    yaml.safe_dump_all(documents, out, sort_keys=False, width=1000)
    return EXIT_FAILED if errors else EXIT_OK

"""`kubectl assay` commands on RoutePolicies, with the current kubeconfig:

    kubectl assay status [POLICY] [-n NS | -A]   policies and their QualificationRuns, one compact table each
    kubectl assay promote POLICY [CANDIDATE]     promote CANDIDATE (default: the best qualified one)
    kubectl assay rollback POLICY                restore the last known good route
    kubectl assay requalify POLICY               qualify the candidates again

The last three set an annotation (assay.dev/promote = the candidate or "best" with an "@<time>" nonce,
assay.dev/rollback and assay.dev/requalify = a fresh timestamp); the operator acts on each distinct value once
(assay.controllers.handle_route.commands) and records it in status.handledCommands. `kubectl assay report`
is `assay report` (assay.report.command). Exit status 0 on success, 2 when the object or cluster is unusable.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from assay.promotion import machine
from assay.report import cluster, content

EXIT_OK = 0
EXIT_FAILED = 2

POLICY_HEADERS = ("NAME", "PHASE", "ACTIVE", "BEST", "LOWER", "SAVINGS", "PENDING", "AGE")
RUN_HEADERS = ("RUN", "POLICY", "CANDIDATE", "PHASE", "PROGRESS", "ESTIMATE", "LOWER", "UPPER", "REASON", "AGE")


def age(created: str | None, now: datetime.datetime) -> str:
    """The AGE column as kubectl writes it (its HumanDuration): 45s, 5m30s, 12m, 5h10m, 20h, 3d4h, 40d, 2y30d."""
    if not created:
        return "<unknown>"
    seconds = max(0, int((now - datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if years < 8 and days % 365 else f"{years}y"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join(
        "   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]
    )


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)  # type: ignore[assignment]
    return obj


def status_tables(
    policies: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    *,
    now: datetime.datetime,
    all_namespaces: bool = False,
) -> str:
    """The `status` output: one line per RoutePolicy, then one per QualificationRun. Pure."""
    prefix = ("NAMESPACE",) if all_namespaces else ()

    def ns(obj: Mapping[str, Any]) -> tuple[str, ...]:
        return (obj["metadata"].get("namespace", ""),) if all_namespaces else ()

    policy_rows = []
    for policy in policies:
        status = policy.get("status") or {}
        pending = status.get("pending") or {}
        policy_rows.append(
            (
                *ns(policy),
                policy["metadata"]["name"],
                status.get("phase") or "-",
                _get(status, "activeRoute", "model") or "-",
                status.get("bestCandidate") or "-",
                content.number(status.get("lowerBound")) if status.get("lowerBound") is not None else "-",
                _get(status, "savings", "display") or "-",
                " ".join(filter(None, (pending.get("action"), pending.get("candidate")))) or "-",
                age(policy["metadata"].get("creationTimestamp"), now),
            )
        )
    run_rows = []
    for run in runs:
        status, stats = run.get("status") or {}, _get(run, "status", "statistics") or {}

        def bound(key: str, stats: Mapping[str, Any] = stats) -> str:
            return "-" if stats.get(key) is None else content.number(stats[key])

        run_rows.append(
            (
                *ns(run),
                run["metadata"]["name"],
                _get(run, "spec", "policyRef", "name") or "-",
                _get(run, "spec", "candidate", "name") or "-",
                status.get("phase") or "-",
                _get(status, "progress", "display") or "-",
                bound("estimate"),
                bound("lowerBound"),
                bound("upperBound"),
                status.get("reason") or "-",
                age(run["metadata"].get("creationTimestamp"), now),
            )
        )
    parts = [_table((*prefix, *POLICY_HEADERS), policy_rows) if policy_rows else "No RoutePolicies found."]
    parts.append(_table((*prefix, *RUN_HEADERS), run_rows) if run_rows else "No QualificationRuns found.")
    return "\n\n".join(parts) + "\n"


def _namespace_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")


def status(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`kubectl assay status [POLICY]`: policies and their runs."""
    parser = argparse.ArgumentParser(prog="kubectl assay status", description="Show RoutePolicies and their runs.")
    parser.add_argument("policy", nargs="?", metavar="POLICY", help="only this RoutePolicy and its runs")
    _namespace_args(parser)
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    args = parser.parse_args(list(argv))
    if args.all_namespaces and (args.policy or args.namespace):
        parser.error("-A lists every namespace: give neither POLICY nor --namespace with it")
    namespace = None if args.all_namespaces else args.namespace or cluster.current_namespace()
    try:
        if args.policy and namespace is not None:
            policies = [cluster.get("RoutePolicy", namespace, args.policy)]
        else:
            policies = cluster.list_objects("RoutePolicy", namespace)
        runs = cluster.list_objects("QualificationRun", namespace)
    except cluster.ClusterError as exc:
        print(f"kubectl assay status: {exc}", file=stderr or sys.stderr)
        return EXIT_FAILED
    if args.policy:
        runs = [r for r in runs if _get(r, "spec", "policyRef", "name") == args.policy]
    now = datetime.datetime.now(datetime.UTC)
    (stdout or sys.stdout).write(status_tables(policies, runs, now=now, all_namespaces=args.all_namespaces))
    return EXIT_OK


def fresh_value(now: datetime.datetime | None = None) -> str:
    """A new annotation value (UTC time to the microsecond): the operator acts once per distinct value."""
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _command(
    command: str, argv: Sequence[str], *, stdout: TextIO | None, stderr: TextIO | None, description: str
) -> int:
    """promote / rollback / requalify: check the policy, then set its command annotation."""
    parser = argparse.ArgumentParser(prog=f"kubectl assay {command}", description=description)
    parser.add_argument("policy", metavar="POLICY", help="the RoutePolicy")
    if command == "promote":
        parser.add_argument("candidate", nargs="?", default="best", help='candidate name (default "best")')
    _namespace_args(parser)
    args = parser.parse_args(list(argv))
    namespace = args.namespace or cluster.current_namespace()
    err = stderr or sys.stderr
    annotation = {
        "promote": machine.PROMOTE_ANNOTATION,
        "rollback": machine.ROLLBACK_ANNOTATION,
        "requalify": machine.REQUALIFY_ANNOTATION,
    }[command]
    try:
        policy = cluster.get("RoutePolicy", namespace, args.policy)
        value = fresh_value() if command != "promote" else promote_value(policy, args.candidate)
        cluster.annotate("RoutePolicy", namespace, args.policy, {annotation: value})
    except (cluster.ClusterError, PromoteRefused) as exc:
        print(f"kubectl assay {command}: {exc}", file=err)
        return EXIT_FAILED
    print(f"routepolicy/{args.policy} annotated: {annotation}={value}", file=stdout or sys.stdout)
    return EXIT_OK


class PromoteRefused(ValueError):
    """The promotion the user asked for cannot happen; the message says what to do instead."""


def promote_value(policy: Mapping[str, Any], candidate: str) -> str:
    """The assay.dev/promote value (`<candidate or best>@<nonce>`) for promoting `candidate` of this
    RoutePolicy, or PromoteRefused when the operator would reject it."""
    name = policy["metadata"]["name"]
    status = policy.get("status") or {}
    names = [c.get("name") for c in _get(policy, "spec", "candidates") or []]
    if candidate == "best":
        if not status.get("bestCandidate"):
            raise PromoteRefused(
                f"RoutePolicy {name} has no qualified candidate yet (status.bestCandidate is empty); "
                f"name one to promote it anyway: {', '.join(map(str, names))}"
            )
    elif candidate not in names:
        raise PromoteRefused(f"RoutePolicy {name} has no candidate {candidate!r}; its candidates: {', '.join(names)}")
    # The operator acts once per distinct value; the nonce makes every command new (promote mini, roll back,
    # promote mini again) while the operator reads only the part before "@".
    return f"{candidate}@{fresh_value()}"


def promote(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`kubectl assay promote POLICY [CANDIDATE]`."""
    description = "Promote a candidate of a RoutePolicy (default: the best qualified one)."
    return _command("promote", argv, stdout=stdout, stderr=stderr, description=description)


def rollback(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`kubectl assay rollback POLICY`."""
    description = "Restore a RoutePolicy's last known good route."
    return _command("rollback", argv, stdout=stdout, stderr=stderr, description=description)


def requalify(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`kubectl assay requalify POLICY`."""
    description = "Qualify a RoutePolicy's candidates again."
    return _command("requalify", argv, stdout=stdout, stderr=stderr, description=description)

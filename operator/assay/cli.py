"""The `assay` command: the operator, the CRD generator, offline analysis, the evaluator and reports."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence


def _operator(argv: Sequence[str]) -> int:
    from assay.controllers import runtime
    from assay.spend import prometheus

    parser = argparse.ArgumentParser(prog="assay operator", description="Run the assay operator.")
    parser.add_argument("--namespace", "-n", action="append", default=[], help="watch only this namespace (repeatable)")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("ASSAY_METRICS_PORT", "8080")))
    parser.add_argument("--webhook-port", type=int, default=int(os.environ.get("ASSAY_WEBHOOK_PORT", "0")) or None)
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(os.environ.get("ASSAY_HEALTH_PORT", "0")) or None,
        help="serve /healthz (alive) and /readyz (leading, alert index warm) on this port",
    )
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("ASSAY_PROMETHEUS_URL") or None,
        help="the Prometheus that scrapes the gateways: each RoutePolicy's status.spend is read from it",
    )
    parser.add_argument(
        "--prometheus-token-file",
        default=os.environ.get("ASSAY_PROMETHEUS_TOKEN_FILE") or None,
        help="a file holding Prometheus's bearer token (a mounted Secret; or ASSAY_PROMETHEUS_TOKEN)",
    )
    parser.add_argument(
        "--spend-interval",
        type=float,
        default=float(os.environ.get("ASSAY_SPEND_INTERVAL", "300")),
        help="seconds between two spend reads (one batched query for every policy's route)",
    )
    args = parser.parse_args(argv)
    if args.spend_interval <= 0:
        parser.error("--spend-interval must be positive")
    namespaces = args.namespace or [n for n in os.environ.get("ASSAY_NAMESPACES", "").split(",") if n]
    runtime.run(
        runtime.OperatorOptions(
            namespaces=tuple(namespaces),
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            webhook_port=args.webhook_port,
            prometheus=prometheus.Settings(args.prometheus_url, args.prometheus_token_file)
            if args.prometheus_url
            else None,
            spend_interval=args.spend_interval,
        )
    )
    return 0


def _crds(argv: Sequence[str]) -> int:
    from assay.api import crdgen

    return crdgen.main(list(argv))


def _analyze(argv: Sequence[str]) -> int:
    from assay.qualification.analyze import main as analyze_main

    return analyze_main(list(argv))


def _evaluate(argv: Sequence[str]) -> int:
    from assay.evaluator.__main__ import main as evaluator_main

    return int(evaluator_main(list(argv)) or 0)


def _report(argv: Sequence[str]) -> int:
    from assay.report import command

    return command.main(list(argv))


def _top(argv: Sequence[str]) -> int:
    from assay.spend import command

    return command.main(list(argv))


def _budget_rules(argv: Sequence[str]) -> int:
    from assay.spend import rules_command

    return rules_command.main(list(argv))


def _plugin(name: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        from assay.report import plugin

        handler: Callable[[Sequence[str]], int] = getattr(plugin, name)
        return handler(argv)

    return run


COMMANDS = {
    "operator": (_operator, "run the operator"),
    "crds": (_crds, "write the CRDs generated from the API models"),
    "analyze": (_analyze, "recompute a qualification decision from evidence files, or a watch (--watch)"),
    "evaluate": (_evaluate, "run the evaluator (the Job's program)"),
    "report": (_report, "write a run's qualification report, or a policy's watch report (--watch)"),
    "status": (_plugin("status"), "show RoutePolicies and their QualificationRuns"),
    "promote": (_plugin("promote"), "promote a RoutePolicy's candidate (annotation assay.dev/promote)"),
    "rollback": (_plugin("rollback"), "restore a RoutePolicy's last known good route (assay.dev/rollback)"),
    "requalify": (_plugin("requalify"), "qualify a RoutePolicy's candidates again (assay.dev/requalify)"),
    "top": (_top, "rank routes by spend read from Prometheus, with the Pareto cut (docs/spend.md)"),
    "budget-rules": (_budget_rules, "print the Prometheus alert rules of RoutePolicies' spec.budget"),
}
PLUGIN_COMMANDS = ("status", "report", "promote", "rollback", "requalify", "analyze", "top", "budget-rules")


def main(argv: Sequence[str] | None = None, *, prog: str = "assay", only: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    offered = {name: COMMANDS[name] for name in only} if only is not None else COMMANDS
    if not args or args[0] in {"-h", "--help"} or args[0] not in offered:
        lines = [f"  {name:<10} {help_}" for name, (_, help_) in offered.items()]
        print(f"usage: {prog} COMMAND [ARGS]\n\ncommands:\n" + "\n".join(lines), file=sys.stderr)
        return 0 if args and args[0] in {"-h", "--help"} else 2
    logging.basicConfig(
        level=os.environ.get("ASSAY_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    handler, _ = offered[args[0]]
    return handler(args[1:])


def kubectl_plugin() -> int:
    """`kubectl assay ...`: the commands that work on a cluster's policies and runs, for kubectl's plugin
    mechanism (kubectl runs `kubectl-assay` from PATH with the arguments after `kubectl assay`)."""
    return main(prog="kubectl assay", only=PLUGIN_COMMANDS)

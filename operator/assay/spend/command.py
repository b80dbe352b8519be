"""`assay top` / `kubectl assay top`: routes (or features, tenants) ranked by spend read from Prometheus, with
their cumulative share and the 80% Pareto cut; with a reachable cluster, each route's RoutePolicies, a
qualified candidate not yet promoted and its projected saving, and for a policy with spec.outcome the outcomes
over the window and the cost per outcome; with `--forecast`, the month-end forecast and the money left on the
table. `--output focus` writes the same spend as FinOps FOCUS CSV (assay.spend.focus).

Prometheus down, a query it refuses or no spend series at all is an error on stderr and exit code 2, never
an empty table; so is an outcome query Prometheus refuses. An outcome query answering no series is a note on
stderr and the outcomes show as unknown, never zero. No cluster is a note on stderr: spend is still ranked. The
bearer token is never printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from assay.qualification import cost
from assay.report import cluster, plugin
from assay.spend import focus, forecast, pareto, prometheus, reading, sources

ENV_URL, ENV_TOKEN, ENV_TOKEN_FILE = prometheus.ENV_URL, prometheus.ENV_TOKEN, prometheus.ENV_TOKEN_FILE
EXIT_OK, EXIT_FAILED = 0, 2
SOURCES = ("litellm", "envoy-ai-gateway", "promql")
OUTPUTS = ("table", "json", "focus", "html")


class OutcomeUnread(prometheus.PrometheusError):
    """A RoutePolicy's spec.outcome.query that Prometheus refused or could not answer, naming the policies."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assay top", description="Rank routes (or features, tenants) by spend, from the gateway's metrics."
    )
    parser.add_argument("--prometheus-url", default=None, help=f"Prometheus base URL (default: ${ENV_URL})")
    parser.add_argument(
        "--token-file", default=None, help=f"file holding a bearer token for Prometheus (default: ${ENV_TOKEN_FILE})"
    )
    parser.add_argument("--source", choices=SOURCES, default="litellm", help="the gateway kind exporting spend")
    parser.add_argument("--promql", help="with --source promql: PromQL answering USD, with $window and $by")
    parser.add_argument("--by", choices=sources.DIMENSIONS, default="route", help="what to rank (default: route)")
    parser.add_argument("--window", default="30d", help="Prometheus duration to sum spend over (1d, 7d, 30d...)")
    parser.add_argument("--at", type=float, help="evaluate at this Unix time (default: now)")
    parser.add_argument(
        "--feature-label", default="metadata.feature", help="LiteLLM custom_prometheus_metadata_labels entry"
    )
    parser.add_argument("--tenant-label", default="metadata.tenant", help="the same, for the tenant")
    parser.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE", help="only these series")
    parser.add_argument(
        "--include-assay-calls",
        action="store_true",
        help="LiteLLM: also count assay's own watch calls (tag assay-watch), which the operator's spend leaves out",
    )
    parser.add_argument("--cut", type=float, default=pareto.DEFAULT_CUT, help="Pareto cut as a share (0.8)")
    parser.add_argument("--forecast", action="store_true", help="add the month-end forecast (one query per day)")
    parser.add_argument("-n", "--namespace", help="RoutePolicies of this namespace (default: the context's)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="RoutePolicies of every namespace")
    parser.add_argument("--no-cluster", action="store_true", help="do not read RoutePolicies")
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="table",
        help="table, json, focus (FinOps FOCUS 1.0 CSV) or html (a page for the report)",
    )
    return parser


def _source(args: argparse.Namespace) -> sources.SpendSource:
    matchers = dict(item.split("=", 1) for item in args.match)
    if args.source == "litellm":
        metadata = {"feature": args.feature_label, "tenant": args.tenant_label}
        exclude = {} if args.include_assay_calls else sources.EXCLUDE_ASSAY_CALLS
        return sources.LiteLLMSource(metadata_labels=metadata, matchers=matchers, exclude=exclude)
    if args.source == "envoy-ai-gateway":
        return sources.EnvoyAIGatewaySource(prices=cost.default_prices(), matchers=matchers)
    return sources.PromQLSource(spend=args.promql, group_labels={dim: dim for dim in sources.DIMENSIONS})


def _policies(args: argparse.Namespace, stderr: TextIO) -> list[pareto.PolicyRoute]:
    if args.no_cluster or args.by != "route":
        return []
    namespace = None if args.all_namespaces else args.namespace or cluster.current_namespace()
    try:
        found = cluster.list_objects("RoutePolicy", namespace)
    except cluster.ClusterError as exc:
        print(f"assay top: RoutePolicies not read ({exc}); ranking spend only", file=stderr)
        return []
    return [pareto.policy_route(policy) for policy in found]


def _outcomes(
    client: prometheus.Querier, policies: Sequence[pareto.PolicyRoute], window: str, *, at: float, stderr: TextIO
) -> dict[str, float | None]:
    """Each distinct spec.outcome.query of the policies read once over `window`: query -> outcomes, None when it
    answered no series (a note on stderr: unknown, not zero). Any other failure raises OutcomeUnread."""
    by_query: dict[str, list[str]] = {}
    for policy in policies:
        if policy.outcome_query is not None:
            by_query.setdefault(policy.outcome_query, []).append(f"{policy.namespace}/{policy.name}")
    counts: dict[str, float | None] = {}
    for query, names in by_query.items():
        try:
            counts[query] = reading.outcomes(client, query, window, at=at)
        except prometheus.NoSeries as exc:
            print(f"assay top: outcomes of {', '.join(names)} unknown: {exc}", file=stderr)
            counts[query] = None
        except prometheus.PrometheusError as exc:
            raise OutcomeUnread(f"spec.outcome.query of {', '.join(names)}: {exc}") from exc
    return counts


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _count(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _outcome_cells(row: pareto.Row) -> list[str]:
    """OUTCOMES (`4 (resolved ticket)`, `unknown (...)`) and USD/OUTCOME; several kinds on a route side by side."""
    if not row.outcomes:
        return ["-", "-"]
    counted = ", ".join(f"{_count(o.count)} ({o.name})" for o in row.outcomes)
    per = [o.cost_per_outcome for o in row.outcomes]
    return [counted, ", ".join("-" if value is None else f"${value:.6f}" for value in per)]


def _cells(
    row: pareto.Row, by: str, forecasts: Mapping[str, forecast.Forecast] | None, *, outcomes: bool = False
) -> list[str]:
    best = row.best_saving
    cells = [
        str(row.rank),
        row.group or "(none)",
        _usd(row.usd),
        f"{row.share:.1%}",
        f"{row.cumulative:.1%}",
        "-" if row.requests is None else f"{row.requests:,.0f}",
        "-" if row.cost_per_request is None else f"${row.cost_per_request:.6f}",
    ]
    if by == "route":
        names = ",".join(f"{p.namespace}/{p.name}" for p in row.policies) or "-"
        cells += [names, best.qualified if best and best.qualified else "-"]
        cells += ["-" if best is None or best.saving_percent is None else f"{best.saving_percent:.0f}%"]
    if outcomes:
        cells += _outcome_cells(row)
    if forecasts is not None:
        month = forecasts.get(row.group)
        interval = "-" if month is None or month.low is None else f"{_usd(month.low)}-{_usd(month.high)}"
        left = forecast.left_on_table(month, best.saving_percent if best else None) if month else None
        cells += [_usd(month.point if month else None), interval, _usd(left)]
    return cells


def _grid(
    rows: Sequence[pareto.Row], *, by: str, window: str, cut: float, forecasts: Any = None
) -> tuple[list[str], list[list[str]], int, str]:
    """(headers, cells, rows above the Pareto cut, summary): what the table and the HTML page show. The OUTCOMES
    and USD/OUTCOME columns show when a route's policy has spec.outcome."""
    outcomes = any(row.outcomes for row in rows)
    headers = ["#", by.upper(), f"SPEND {window}", "SHARE", "CUM", "REQUESTS", "USD/REQ"]
    if by == "route":
        headers += ["POLICY", "QUALIFIED", "SAVING"]
    if outcomes:
        headers += ["OUTCOMES", "USD/OUTCOME"]
    if forecasts is not None:
        headers += ["MONTH-END", "95% INTERVAL", "LEFT ON TABLE"]
    cells = [_cells(row, by, forecasts, outcomes=outcomes) for row in rows]
    in_head = len(pareto.head(rows))
    total = sum(row.usd for row in rows)
    summary = f"{in_head} of {len(rows)} {by}s hold {cut:.0%} of {_usd(total)} spent over {window}"
    return headers, cells, in_head, summary


def table(rows: Sequence[pareto.Row], *, by: str, window: str, cut: float, forecasts: Any = None) -> str:
    """The terminal table: ranked rows, a line under the Pareto cut, and a summary."""
    headers, cells, in_head, summary = _grid(rows, by=by, window=window, cut=cut, forecasts=forecasts)
    lines = plugin._table(headers, cells).split("\n")
    if 0 < in_head < len(rows):
        lines.insert(in_head + 1, f"---- {cut:.0%} of spend above this line ----")
    lines.append(f"\n{summary}")
    return "\n".join(lines) + "\n"


def as_html(rows: Sequence[pareto.Row], *, by: str, window: str, cut: float, forecasts: Any = None) -> str:
    """The same ranking as an HTML page (the report's style), e.g. `assay top -o html > out/spend.html`."""
    from assay.report import render  # the report's page style (its plots are not needed here)

    headers, cells, in_head, summary = _grid(rows, by=by, window=window, cut=cut, forecasts=forecasts)
    return render.spend_page(f"Spend by {by}", summary, headers, cells, cut_after=in_head, cut=f"{cut:.0%}")


def as_json(rows: Sequence[pareto.Row], *, by: str, window: str, cut: float, forecasts: Any = None) -> str:
    """The same figures as JSON, for scripts."""
    items = []
    for row in rows:
        best = row.best_saving
        item: dict[str, Any] = {
            "rank": row.rank,
            by: row.group,
            "usd": row.usd,
            "requests": row.requests,
            "costPerRequest": row.cost_per_request,
            "share": row.share,
            "cumulativeShare": row.cumulative,
            "inHead": row.in_head,
        }
        if by == "route":
            item["policies"] = [f"{p.namespace}/{p.name}" for p in row.policies]
            item["qualifiedCandidate"] = best.qualified if best else None
            item["projectedSavingPercent"] = best.saving_percent if best else None
            item["outcomes"] = [
                {
                    "name": o.name,
                    "query": o.query,
                    "policies": list(o.policies),
                    "outcomes": o.count,
                    "known": o.count is not None,
                    "costPerOutcome": o.cost_per_outcome,
                }
                for o in row.outcomes
            ]
        if forecasts is not None and row.group in forecasts:
            month = forecasts[row.group]
            item["forecast"] = {
                "monthEnd": month.point,
                "low": month.low,
                "high": month.high,
                "spentSoFar": month.spent,
                "method": month.method,
                "leftOnTable": forecast.left_on_table(month, best.saving_percent if best else None),
            }
        items.append(item)
    return json.dumps({"by": by, "window": window, "cut": cut, "rows": items}, indent=2) + "\n"


def main(
    argv: Sequence[str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    out, err, environ = stdout or sys.stdout, stderr or sys.stderr, os.environ if env is None else env
    parser = _parser()
    args = parser.parse_args(list(argv))
    url = args.prometheus_url or environ.get(ENV_URL)
    if not url:
        parser.error(f"give --prometheus-url or set {ENV_URL}")
    if args.source == "promql" and not args.promql:
        parser.error("--source promql needs --promql")
    if any("=" not in item for item in args.match):
        parser.error("--match takes LABEL=VALUE")
    if args.output == "focus" and args.forecast:
        parser.error("--output focus writes the spend over --window; --forecast does not apply")
    # One instant for every query (spend, requests, outcomes), and the end of the FOCUS charge period.
    at = time.time() if args.at is None else args.at
    try:
        prometheus.check_duration(args.window)
        source = _source(args)
        token = prometheus.read_bearer_token(environ, path=args.token_file)
        with prometheus.PrometheusClient(url, bearer_token=token) as client:
            spent = reading.spend(client, source, args.window, by=args.by, at=at)
            counted = reading.requests(client, source, args.window, by=args.by, at=at)
            forecasts = None
            if args.forecast:
                now = datetime.datetime.fromtimestamp(at, datetime.UTC)
                forecasts = reading.month_so_far(client, source, now=now, by=args.by).forecasts()
            policies = _policies(args, err)
            outcomes = _outcomes(client, policies, args.window, at=at, stderr=err)
    except (prometheus.PrometheusError, ValueError) as exc:
        print(f"assay top: {exc}", file=err)
        return EXIT_FAILED
    rows = pareto.rank(spent, requests=counted, policies=policies, cut=args.cut, outcomes=outcomes)
    if args.output == "focus":
        out.write(focus.csv_text(rows, by=args.by, window=args.window, at=at, source=args.source))
        return EXIT_OK
    writer = {"json": as_json, "html": as_html}.get(args.output, table)
    out.write(writer(rows, by=args.by, window=args.window, cut=args.cut, forecasts=forecasts))
    return EXIT_OK

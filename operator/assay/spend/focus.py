"""Spend by route over a window as CSV in the FinOps FOCUS 1.0 format (`assay top --output focus`), for a
warehouse that already holds the cloud bills in FOCUS. Pure: ranked rows in, CSV text out.

One Usage row per route (or feature, tenant) over the window read: the charge period is the window ending at the
instant Prometheus evaluated it. The columns that apply to spend read from a gateway's metrics are written;
those only an invoice knows (billing account, billing period, invoice issuer, list and contracted prices, SKUs)
are left out rather than made up (docs/spend.md lists both).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections.abc import Mapping, Sequence

from assay.spend import pareto, prometheus

COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeFrequency",
    "ChargeDescription",
    "ServiceCategory",
    "ServiceName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "Tags",
    "x_OutcomeName",
    "x_Outcomes",
)
CURRENCY = "USD"
SERVICE_CATEGORY = "AI and Machine Learning"
# The service the spend was read from, per `assay top --source`.
SERVICE_NAMES: Mapping[str, str] = {
    "litellm": "LiteLLM",
    "envoy-ai-gateway": "Envoy AI Gateway",
    "promql": "LLM gateway",
}
TAG_PREFIX = "assay/"
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def duration_seconds(window: str) -> float:
    """A Prometheus duration (`30d`, `1h30m`, `6003ms`) in seconds, as Prometheus counts them (a day is 24 h, a
    year 365 d)."""
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(prometheus.check_duration(window)))


def stamp(moment: float) -> str:
    """FOCUS date/time: ISO 8601 in UTC, to the second."""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value: float | None) -> str:
    """A FOCUS decimal without exponent (`0.00042`, never `4.2e-04`); empty (null) for None."""
    return "" if value is None else format(value, ".10f").rstrip("0").rstrip(".") or "0"


def _row(row: pareto.Row, *, by: str, window: str, period: tuple[str, str], service: str) -> list[str]:
    group = row.group
    named = f"{by} {group}" if group else f"spend without a {by} label"
    tags: dict[str, str] = {f"{TAG_PREFIX}{by}": group} if group else {}
    if row.policies:
        tags[f"{TAG_PREFIX}policies"] = ",".join(f"{p.namespace}/{p.name}" for p in row.policies)
    # Outcomes in the x_ columns when the route counts one kind; several kinds would not fit one row's columns.
    outcome = row.outcomes[0] if len(row.outcomes) == 1 else None
    resource = by == "route" and bool(group)
    return [
        _decimal(row.usd),
        _decimal(row.usd),
        CURRENCY,
        *period,
        "Usage",
        "",  # ChargeClass: null, not a correction
        "Usage-Based",
        f"LLM calls, {named}, over {window}, read from {service}'s metrics",
        SERVICE_CATEGORY,
        service,
        group if resource else "",
        group if resource else "",
        "LLM route" if resource else "",
        _decimal(row.requests),
        "Requests" if row.requests is not None else "",
        json.dumps(tags, sort_keys=True) if tags else "",
        outcome.name if outcome else "",
        _decimal(outcome.count) if outcome else "",
    ]


def csv_text(rows: Sequence[pareto.Row], *, by: str, window: str, at: float, source: str) -> str:
    """The rows as FOCUS CSV (header first, RFC 4180 line endings): the charge period ends at `at` (Unix time)
    and starts `window` before it."""
    period = (stamp(at - duration_seconds(window)), stamp(at))
    service = SERVICE_NAMES.get(source, SERVICE_NAMES["promql"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_row(row, by=by, window=window, period=period, service=service))
    return out.getvalue()

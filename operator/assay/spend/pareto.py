"""The Pareto view of spend: routes (or features, tenants) ranked by dollars with their cumulative share, the
cut where the head reaches 80% of spend, and what assay knows about each route from its RoutePolicies. Pure.

The head is every row up to and including the one whose cumulative share first reaches the cut: the fewest
routes that together hold at least 80% of spend (ties in spend are ranked by name, so the cut is stable).

A route whose RoutePolicy has spec.outcome also carries its outcomes over the window and the cost per outcome; an
outcome query that answered no series is unknown (None), never zero outcomes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from assay.spend import figures

DEFAULT_CUT = 0.8


@dataclasses.dataclass(frozen=True)
class PolicyRoute:
    """One RoutePolicy as the spend view sees it: the route it governs, the candidate serving it, and the best
    candidate that passed qualification but is not serving (with its projected saving in percent)."""

    namespace: str
    name: str
    route: str
    promoted: str | None
    qualified: str | None
    saving_percent: float | None
    outcome_name: str | None = None
    outcome_query: str | None = None


def policy_route(policy: Mapping[str, Any]) -> PolicyRoute:
    """Read a RoutePolicy object (as the API server returns it). The route is spec.gateway.route, defaulting
    to spec.promptType, as the operator resolves it; a candidate counts as qualified when its run Passed."""
    meta, spec, status = policy.get("metadata") or {}, policy.get("spec") or {}, policy.get("status") or {}
    route = (spec.get("gateway") or {}).get("route") or spec.get("promptType") or meta.get("name", "")
    promoted = status.get("promotedCandidate")
    passed = [
        c
        for c in status.get("candidates") or []
        if c.get("phase") == "Passed" and c.get("name") != promoted and c.get("savingsPercent") is not None
    ]
    best = max(passed, key=lambda c: float(c["savingsPercent"]), default=None)
    outcome = spec.get("outcome") or {}
    return PolicyRoute(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        route=str(route),
        promoted=promoted,
        qualified=None if best is None else str(best["name"]),
        saving_percent=None if best is None else float(best["savingsPercent"]),
        outcome_name=str(outcome["name"]) if outcome.get("name") else None,
        outcome_query=str(outcome["query"]) if outcome.get("query") else None,
    )


@dataclasses.dataclass(frozen=True)
class RouteOutcome:
    """One spec.outcome on a route: what an outcome is, its query, the outcomes it counted over the window (None:
    the query answered no series, unknown) and the policies carrying it."""

    name: str
    query: str
    count: float | None
    usd: float
    policies: tuple[str, ...]

    @property
    def cost_per_outcome(self) -> float | None:
        """usd / outcomes; None when the outcomes are unknown or zero (as status.spend)."""
        return figures.cost_per_outcome(figures.Reading(self.usd, None, outcomes=self.count))


def route_outcomes(
    policies: Iterable[PolicyRoute], usd: float, counts: Mapping[str, float | None]
) -> tuple[RouteOutcome, ...]:
    """The distinct spec.outcome queries of a route's policies (in policy order) with their counts, as read into
    `counts` (query -> outcomes, None for no series); a query missing from `counts` was not read and is left out."""
    found: dict[str, RouteOutcome] = {}
    for policy in policies:
        query = policy.outcome_query
        if query is None or query not in counts:
            continue
        name = f"{policy.namespace}/{policy.name}"
        if query in found:
            found[query] = dataclasses.replace(found[query], policies=(*found[query].policies, name))
        else:
            found[query] = RouteOutcome(policy.outcome_name or "outcome", query, counts[query], usd, (name,))
    return tuple(found.values())


@dataclasses.dataclass(frozen=True)
class Row:
    """One ranked group: its spend and share, whether it is in the head, and its policies (routes only)."""

    rank: int
    group: str
    usd: float
    requests: float | None
    share: float
    cumulative: float
    in_head: bool
    policies: tuple[PolicyRoute, ...] = ()
    outcomes: tuple[RouteOutcome, ...] = ()

    @property
    def cost_per_request(self) -> float | None:
        return self.usd / self.requests if self.requests else None

    @property
    def best_saving(self) -> PolicyRoute | None:
        """The policy on this route with the largest projected saving of a qualified, unpromoted candidate."""
        candidates = [p for p in self.policies if p.saving_percent is not None]
        return max(candidates, key=lambda p: p.saving_percent or 0.0, default=None)


def rank(
    spend: Mapping[str, float],
    *,
    requests: Mapping[str, float] | None = None,
    policies: Iterable[PolicyRoute] = (),
    cut: float = DEFAULT_CUT,
    outcomes: Mapping[str, float | None] | None = None,
) -> list[Row]:
    """Groups ranked by spend (largest first), with share, cumulative share and the head up to `cut`; with
    `outcomes` (spec.outcome.query -> outcomes over the window, None for no series) each route's outcomes."""
    if not 0 < cut <= 1:
        raise ValueError(f"the Pareto cut {cut!r} must be a share in (0, 1], e.g. 0.8")
    by_route: dict[str, list[PolicyRoute]] = {}
    for policy in policies:
        by_route.setdefault(policy.route, []).append(policy)
    total = sum(spend.values())
    ordered = sorted(spend.items(), key=lambda item: (-item[1], item[0]))
    rows, cumulative = [], 0.0
    for index, (group, usd) in enumerate(ordered, start=1):
        before = cumulative
        share = usd / total if total > 0 else 0.0
        cumulative += share
        rows.append(
            Row(
                rank=index,
                group=group,
                usd=usd,
                requests=None if requests is None else requests.get(group),
                share=share,
                cumulative=cumulative,
                in_head=total > 0 and before < cut - 1e-9,  # float sums: 0.5 + 0.3 must not miss 0.8
                policies=tuple(by_route.get(group, ())),
                outcomes=route_outcomes(by_route.get(group, ()), usd, outcomes or {}),
            )
        )
    return rows


def head(rows: Sequence[Row]) -> list[Row]:
    """The rows inside the Pareto cut."""
    return [row for row in rows if row.in_head]

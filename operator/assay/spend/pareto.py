"""The Pareto view of spend: routes (or features, tenants) ranked by dollars with their cumulative share, the
cut where the head reaches 80% of spend, and what assay knows about each route from its RoutePolicies. Pure.

The head is every row up to and including the one whose cumulative share first reaches the cut: the fewest
routes that together hold at least 80% of spend (ties in spend are ranked by name, so the cut is stable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
    return PolicyRoute(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        route=str(route),
        promoted=promoted,
        qualified=None if best is None else str(best["name"]),
        saving_percent=None if best is None else float(best["savingsPercent"]),
    )


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
) -> list[Row]:
    """Groups ranked by spend (largest first), with share, cumulative share and the head up to `cut`."""
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
            )
        )
    return rows


def head(rows: Sequence[Row]) -> list[Row]:
    """The rows inside the Pareto cut."""
    return [row for row in rows if row.in_head]

"""Budget alerts to actions, pure: from a policy's spec, status and one budget alert (firing or resolved) to the
status that records it, the intent to hand to the one route writer, and the Events. No Kubernetes, no clock.

The rules (docs/spend.md, "Budgets"):

- A firing budget alert acts once per firing (its fingerprint and start, as drift alerts): Alertmanager's repeats
  change nothing. It is listed in status.budget.firing and sets BudgetExceeded True (reason: the trigger).
- The action is spec.budget.action: Alert (the condition and an Event only), FreezePromotions (no promotion starts
  or advances while any budget alert fires: machine.promotions_frozen), ShiftToQualified (a Promote intent for the
  cheapest candidate whose Passed qualification is younger than qualificationMaxAgeDays, source Budget), RollBack
  (a RollBack intent, source Budget: the last known good route comes back, as for any rollback).
- A dry run records what the action would have done (condition, Event, status.budget.lastAction) and does nothing.
- A resolved alert leaves the firing list; when none is left BudgetExceeded turns False, which lifts a freeze. A
  rollback or shift already done stays done (as for drift alerts: a resolved alert undoes nothing).
- No alert, no action: missing data never fires a rule (assay.spend.budget_rules).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Literal

from assay.api import routepolicy
from assay.controllers import conditions
from assay.promotion import machine

CONDITION = "BudgetExceeded"
Trigger = Literal["Daily", "Monthly", "BurnRate"]


@dataclasses.dataclass
class Applied:
    """What one budget alert did: whether status changed, whether an intent was put (hand it to the route writer),
    the action as counted in metrics (None: nothing acted, e.g. a repeat), and the Events to post."""

    changed: bool = False
    intent: Literal["Promote", "RollBack"] | None = None
    action: str | None = None
    notices: list[machine.Notice] = dataclasses.field(default_factory=list)


def cheapest_qualified(
    status: machine.Status, spec: machine.Spec, *, now: datetime.datetime
) -> routepolicy.CandidateStatus | None:
    """The candidate with a Passed qualification younger than qualificationMaxAgeDays (and still in the spec) with
    the lowest measured cost per request; None when there is none."""
    assert spec.budget is not None
    oldest = now - datetime.timedelta(days=spec.budget.qualification_max_age_days)
    names = {candidate.name for candidate in spec.candidates}
    trusted = [
        entry
        for entry in status.candidates
        if entry.phase == "Passed"
        and entry.name in names
        and entry.decided_at is not None
        and entry.decided_at >= oldest
    ]
    if not trusted:
        return None
    return min(
        trusted,
        key=lambda e: (
            e.cost_per_request if e.cost_per_request is not None else float("inf"),
            -(e.savings_percent or 0),
        ),
    )


def _act(
    status: machine.Status, spec: machine.Spec, *, trigger: str, alert: str, now: datetime.datetime
) -> tuple[str, Literal["Promote", "RollBack"] | None]:
    """Take (or, in a dry run, describe) the policy's action: the message, and the intent put (None: none)."""
    assert spec.budget is not None
    budget = spec.budget
    would = "dry run (spec.budget.dryRun): would " if budget.dry_run else ""
    if budget.action == "Alert":
        return "alerted only (spec.budget.action Alert)", None
    if budget.action == "FreezePromotions":
        return f"{would}freeze promotions until the budget alert resolves", None
    if budget.action == "RollBack":
        if not machine.candidate_serving(status) and not machine.rollback_pending(status):
            return "nothing to roll back: the last known good route serves", None
        if machine.rollback_pending(status):
            return "a rollback is already under way", None
        if budget.dry_run:
            return f"{would}restore the last known good route", None
        if not machine.request_rollback(status, source="Budget", reason=alert, now=now):
            return "no baseline snapshot to restore yet", None
        return "restoring the last known good route", "RollBack"
    target = cheapest_qualified(status, spec, now=now)
    if target is None:
        days = budget.qualification_max_age_days
        return f"no candidate has a Passed qualification younger than {days} days: nothing to shift to", None
    serving = status.promoted_candidate or (status.pending.candidate if status.pending else None)
    if serving == target.name:
        return f"the cheapest qualified candidate {target.name} serves already", None
    if budget.dry_run:
        return f"{would}shift the route to {target.name}, the cheapest qualified candidate", None
    if spec.paused:
        return f"not shifting to {target.name}: the policy is paused (spec.paused)", None
    if status.pending is not None:
        return f"not shifting to {target.name}: a {status.pending.action} is under way", None
    if status.route_source is None or not machine.same_location(status.route_source, machine.source_of(spec)):
        return f"not shifting to {target.name}: the route has not been snapshotted yet", None
    status.pending = machine.new_intent("Promote", source="Budget", reason=alert, candidate=target.name, now=now)
    return f"shifting the route to {target.name}, the cheapest qualified candidate", "Promote"


def apply_alert(
    status: machine.Status,
    spec: machine.Spec,
    *,
    trigger: Trigger,
    alert: str,
    key: str,
    firing: bool,
    since: datetime.datetime | None,
    generation: int | None,
    now: datetime.datetime,
) -> Applied:
    """Record one budget alert in `status` (changed in place) and take the action on a new firing."""
    assert spec.budget is not None
    budget = status.budget or routepolicy.BudgetStatus()
    applied = Applied()
    if not firing:
        kept = [entry for entry in budget.firing if entry.key != key]
        if len(kept) == len(budget.firing):
            return applied
        budget.firing = kept
        status.budget = budget
        applied.changed = True
        if not kept:
            lifted = " Promotions are no longer frozen." if spec.budget.action == "FreezePromotions" else ""
            message = f"Budget alert {alert} resolved: within budget again.{lifted}"
            machine.set_condition(
                status, CONDITION, conditions.FALSE, "WithinBudget", message, generation=generation, now=now
            )
            applied.notices.append(machine.Notice("Normal", "BudgetRecovered", message))
        return applied
    if key in status.handled_alerts or any(entry.key == key for entry in budget.firing):
        return applied  # Alertmanager's repeat of a firing already acted on
    budget.firing = [entry for entry in budget.firing if entry.trigger != trigger][-7:]
    budget.firing.append(routepolicy.BudgetAlert(trigger=trigger, alert=alert, since=since or now, key=key))
    done, applied.intent = _act(status, spec, trigger=trigger, alert=alert, now=now)
    message = f"Budget alert {alert} ({trigger}) fires on route {machine.route_name(spec)}: {done}."
    budget.last_action = routepolicy.BudgetAction(
        trigger=trigger, action=spec.budget.action, dry_run=spec.budget.dry_run, at=now, message=message[:1024]
    )
    status.budget = budget
    machine.remember_alerts(status, [key])
    machine.set_condition(status, CONDITION, conditions.TRUE, trigger, message, generation=generation, now=now)
    applied.changed = True
    applied.action = spec.budget.action
    applied.notices.append(
        machine.Notice("Warning", "BudgetDryRun" if spec.budget.dry_run else "BudgetExceeded", message)
    )
    return applied

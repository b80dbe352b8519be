"""Which RoutePolicies a firing alert rolls back, and which (policy, firing) pairs were already acted on.

Pure: no Kubernetes, no I/O. Policies are plain dicts as the API returns them (camelCase).

The rules, safest reading first:

- Only firing alerts act; resolved ones never do (a resolved drift alert does not undo a rollback).
- A policy without `spec.rollback.alertSelector` never matches: it rolls back only by hand.
- `alertSelector` is a Kubernetes label selector over the alert's labels (matchLabels all equal; matchExpressions
  In / NotIn / Exists / DoesNotExist with metav1.LabelSelector semantics: NotIn also holds when the label is
  absent). Unlike Kubernetes, a selector that selects by exclusion only (empty, or only NotIn / DoesNotExist)
  matches NOTHING: such a selector would roll back on every alert of the cluster.
- Namespace scoping: an alert that carries a `namespace` label matches only policies in that namespace. An
  alert without one (an aggregated rule, say) could come from any team's rule, so it matches only policies that
  opt in with `spec.rollback.matchAlertsWithoutNamespace`, and then by their selector.
- A selector the operator cannot read (a malformed object, In without values) matches nothing.
- Budget alerts (label `assay_budget`, from assay.spend.budget_rules) never roll back through a selector: they
  name their policy (`namespace`, `routepolicy`) and go to its spec.budget action (budget_matches), resolved
  ones too (they lift a freeze).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

from assay.alerts import payload
from assay.api import routepolicy
from assay.spend import budget_rules

logger = logging.getLogger(__name__)

NAMESPACE_LABEL = "namespace"


class SelectorError(ValueError):
    """A selector that cannot be evaluated; the message names the requirement and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Match:
    """A firing alert that selects a RoutePolicy: this policy should roll back."""

    namespace: str
    name: str
    uid: str
    alert_name: str
    fingerprint: str
    starts_at: datetime.datetime

    def policy_ref(self) -> dict[str, str]:
        """The policy and alert as the webhook answers them (no annotations, no label values beyond the name)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "alert": self.alert_name,
            "fingerprint": self.fingerprint,
        }


def selects(selector: routepolicy.AlertSelector, labels: Mapping[str, str]) -> bool:
    """Whether the selector selects this label set; False for a selector that only excludes (see module doc).

    Raises SelectorError for a requirement Kubernetes would reject (In/NotIn without values, Exists/DoesNotExist
    with values).
    """
    for index, requirement in enumerate(selector.match_expressions):
        _check_requirement(requirement, index)
    if not _pins_something(selector):
        return False
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(_holds(requirement, labels) for requirement in selector.match_expressions)


@dataclasses.dataclass(frozen=True)
class BudgetMatch:
    """A budget alert (assay.spend.budget_rules), firing or resolved, for the RoutePolicy its labels name."""

    namespace: str
    name: str
    uid: str
    alert_name: str
    fingerprint: str
    starts_at: datetime.datetime
    trigger: str  # Daily, Monthly or BurnRate
    firing: bool


def is_budget_alert(alert: payload.Alert) -> bool:
    """An alert of a budget rule: it names its policy and never rolls anything back through alertSelector."""
    return budget_rules.BUDGET_LABEL in alert.labels


def budget_matches(alerts: Iterable[payload.Alert], policies: Sequence[Mapping[str, Any]]) -> list[BudgetMatch]:
    """Budget alerts, firing and resolved, with the policy their `namespace` and `routepolicy` labels name, when it
    has spec.budget; an unknown trigger or policy matches nothing."""
    by_name = {
        (str(meta.get("namespace")), str(meta.get("name"))): str(meta.get("uid") or "")
        for policy in policies
        if (policy.get("spec") or {}).get("budget") and (meta := policy.get("metadata") or {}).get("uid")
    }
    found: list[BudgetMatch] = []
    for alert in alerts:
        trigger = budget_rules.TRIGGERS.get(alert.labels.get(budget_rules.BUDGET_LABEL, ""))
        where = (alert.labels.get(NAMESPACE_LABEL, ""), alert.labels.get(budget_rules.POLICY_LABEL, ""))
        uid = by_name.get(where)
        if trigger is None or not uid:
            continue
        found.append(
            BudgetMatch(
                namespace=where[0],
                name=where[1],
                uid=uid,
                alert_name=alert.name,
                fingerprint=alert.fingerprint,
                starts_at=alert.starts_at,
                trigger=trigger,
                firing=alert.status == "firing",
            )
        )
    return found


def match(alerts: Iterable[payload.Alert], policies: Sequence[Mapping[str, Any]]) -> list[Match]:
    """For each firing alert, in order, the policies it selects, in the order given.

    Resolved alerts, budget alerts (budget_matches), policies without an alertSelector and policies whose selector
    cannot be read (logged by policy name) never produce a Match.
    """
    candidates = [candidate for policy in policies if (candidate := _candidate(policy)) is not None]
    matches: list[Match] = []
    for alert in alerts:
        if alert.status != "firing" or is_budget_alert(alert):
            continue
        alert_namespace = alert.labels.get(NAMESPACE_LABEL)
        for ref, selector in candidates:
            if not _in_scope(alert_namespace, ref):
                continue
            if selects(selector, alert.labels):
                matches.append(
                    Match(
                        namespace=ref.namespace,
                        name=ref.name,
                        uid=ref.uid,
                        alert_name=alert.name,
                        fingerprint=alert.fingerprint,
                        starts_at=alert.starts_at,
                    )
                )
    return matches


@dataclasses.dataclass(frozen=True)
class _PolicyRef:
    namespace: str
    name: str
    uid: str
    matches_alerts_without_namespace: bool = False


def _in_scope(alert_namespace: str | None, ref: _PolicyRef) -> bool:
    """An alert with a namespace label reaches only that namespace; one without, only policies that opted in."""
    return ref.matches_alerts_without_namespace if alert_namespace is None else alert_namespace == ref.namespace


def _candidate(policy: Mapping[str, Any]) -> tuple[_PolicyRef, routepolicy.AlertSelector] | None:
    metadata = policy.get("metadata") or {}
    rollback = (policy.get("spec") or {}).get("rollback") or {}
    ref = _PolicyRef(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        matches_alerts_without_namespace=rollback.get("matchAlertsWithoutNamespace") is True,
    )
    raw_selector = rollback.get("alertSelector")
    if raw_selector is None:
        return None
    if not (ref.namespace and ref.name and ref.uid):
        logger.warning("Skipping a RoutePolicy without metadata.namespace/name/uid: %s/%s", ref.namespace, ref.name)
        return None
    try:
        selector = routepolicy.AlertSelector.model_validate(raw_selector)
        for index, requirement in enumerate(selector.match_expressions):
            _check_requirement(requirement, index)
    except (pydantic.ValidationError, SelectorError) as exc:
        logger.warning(
            "RoutePolicy %s/%s: spec.rollback.alertSelector is unreadable, no alert will roll it back: %s",
            ref.namespace,
            ref.name,
            _first_error(exc),
        )
        return None
    return ref, selector


def _check_requirement(requirement: routepolicy.LabelSelectorRequirement, index: int) -> None:
    where = f"spec.rollback.alertSelector.matchExpressions[{index}]"
    if requirement.operator in ("In", "NotIn") and not requirement.values:
        raise SelectorError(f"{where}.values: {requirement.operator} needs at least one value")
    if requirement.operator in ("Exists", "DoesNotExist") and requirement.values:
        raise SelectorError(f"{where}.values: must be empty for {requirement.operator}")


def _pins_something(selector: routepolicy.AlertSelector) -> bool:
    """At least one requirement an alert must positively meet; exclusions alone would select (almost) all."""
    return bool(selector.match_labels) or any(
        requirement.operator in ("In", "Exists") for requirement in selector.match_expressions
    )


def _holds(requirement: routepolicy.LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    if requirement.operator == "In":
        return present and labels[requirement.key] in requirement.values
    if requirement.operator == "NotIn":
        return not present or labels[requirement.key] not in requirement.values
    if requirement.operator == "Exists":
        return present
    return not present  # DoesNotExist


def _first_error(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        return f"spec.rollback.alertSelector.{location}: {first['msg']}"
    return str(exc)

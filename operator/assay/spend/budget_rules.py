"""spec.budget as Prometheus alert rules: one rule group per RoutePolicy, pure (docs/spend.md, "Budgets").

Each rule measures the route's spend in PromQL over the gateway's own metrics, with the same selection as the
spend loop (assay's own watch calls left out), and carries the labels the operator's webhook matches on:
`assay_budget` (daily, monthly, burn-rate), `namespace` and `routepolicy`. Prometheus evaluates them, Alertmanager
delivers their alerts to the operator's webhook, and the operator takes the policy's action once per firing.

- Daily: `increase(spend[1d]) > dailyUsd` (the last 24 hours, rolling).
- Monthly: `increase(spend[30d]) > monthlyUsd` (the last 30 days, rolling, as status.spend.month).
- Burn rate: the spend rate over `window` above `factor` times the rate over the `baseline` window just before
  it (`offset window`, so the burst is not its own baseline; no traffic before counts 0), and above
  `minUsdPerHour`, for `for`.

Missing data never fires: a route without series has no spend expression value, so no alert (and no action).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assay.api import routepolicy
from assay.qualification import cost
from assay.spend import sources

BUDGET_LABEL = "assay_budget"
POLICY_LABEL = "routepolicy"
NAMESPACE_LABEL = "namespace"
# Label value -> status.budget trigger, and the alert each rule raises.
TRIGGERS: Mapping[str, str] = {"daily": "Daily", "monthly": "Monthly", "burn-rate": "BurnRate"}
ALERTS: Mapping[str, str] = {
    "daily": "AssayBudgetDailyExceeded",
    "monthly": "AssayBudgetMonthlyExceeded",
    "burn-rate": "AssayBudgetBurnRate",
}
PROMETHEUS_RULE_API = ("monitoring.coreos.com", "v1", "prometheusrules")


class Unsupported(ValueError):
    """The policy's gateway exports no spend a rule can read (HTTPRoute): its budget cannot be enforced."""


def _litellm(route: str, fn: str, window: str, offset: str | None) -> str:
    sel = sources.selector({sources.LITELLM_ROUTE_LABEL: route}, exclude=sources.EXCLUDE_ASSAY_CALLS)
    shift = f" offset {offset}" if offset else ""
    return f"sum({fn}({sources.LITELLM_SPEND}{sel}[{window}]{shift}))"


def _envoy(
    route: str, models: Sequence[str], prices: Mapping[str, cost.Price], fn: str, window: str, offset: str | None
) -> str:
    """Tokens times the price of each of the policy's models (the response model), summed; a model without
    tokens counts 0 and one without a price is refused (never free)."""
    shift = f" offset {offset}" if offset else ""
    terms = []
    for model in dict.fromkeys(models):
        price = prices.get(model) or prices.get(model.rsplit("/", 1)[-1])
        if price is None:
            raise Unsupported(f"model {model!r} has no price: add it to spec.pricing")
        for kind, per_million in (("input", price.input_per_million), ("output", price.output_per_million)):
            sel = sources.selector(
                {sources.ENVOY_ROUTE_LABEL: route, sources.ENVOY_MODEL_LABEL: model, sources.ENVOY_TOKEN_TYPE: kind}
            )
            terms.append(
                f"(sum({fn}({sources.ENVOY_TOKENS_SUM}{sel}[{window}]{shift})) or vector(0)) * {per_million / 1e6:.6g}"
            )
    return "(" + " + ".join(terms) + ")"


def spend_expr(spec: routepolicy.RoutePolicySpec, *, fn: str, window: str, offset: str | None = None) -> str:
    """PromQL for the route's USD spend: `fn` is increase (USD over window) or rate (USD per second)."""
    route = spec.gateway.route or spec.prompt_type
    if spec.gateway.kind in sources.LITELLM_KINDS:
        return _litellm(route, fn, window, offset)
    if spec.gateway.kind == "EnvoyAIGatewayRoute":
        models = [spec.baseline.model, *(candidate.model for candidate in spec.candidates)]
        return _envoy(route, models, cost.price_table(spec.pricing), fn, window, offset)
    raise Unsupported(
        f"spec.gateway.kind {spec.gateway.kind} exports no spend metrics: budgets need LiteLLM or Envoy AI Gateway"
    )


def _rule(key: str, expr: str, *, namespace: str, name: str, route: str, summary: str, for_: str) -> dict[str, Any]:
    return {
        "alert": ALERTS[key],
        "expr": expr,
        "for": for_,
        "labels": {BUDGET_LABEL: key, NAMESPACE_LABEL: namespace, POLICY_LABEL: name, "route": route},
        "annotations": {"summary": summary},
    }


def rule_group(namespace: str, name: str, spec: routepolicy.RoutePolicySpec) -> dict[str, Any] | None:
    """The policy's budget rule group (Prometheus rule-file form); None without spec.budget. Raises Unsupported
    when the gateway kind exports no spend."""
    budget = spec.budget
    if budget is None:
        return None
    route = spec.gateway.route or spec.prompt_type
    rules: list[dict[str, Any]] = []
    where = dict(namespace=namespace, name=name, route=route)
    limits = (("daily", budget.daily_usd, "1d", "24 h"), ("monthly", budget.monthly_usd, "30d", "30 days"))
    for key, limit, window, span in limits:
        if limit is None:
            continue
        spent = spend_expr(spec, fn="increase", window=window)
        summary = (
            f'Route {route} spent {{{{ $value | printf "%.2f" }}}} USD in {span}, over its {key} budget of '
            f"{limit:g} USD"
        )
        rules.append(_rule(key, f"{spent} > {limit:g}", summary=summary, for_="0s", **where))
    if budget.burn_rate is not None:
        burn = budget.burn_rate
        recent = spend_expr(spec, fn="rate", window=burn.window)
        trailing = spend_expr(spec, fn="rate", window=burn.baseline, offset=burn.window)
        per_second_floor = burn.min_usd_per_hour / 3600
        expr = f"({recent} > {burn.factor:g} * ({trailing} or vector(0))) and ({recent} > {per_second_floor:.6g})"
        rules.append(
            _rule(
                "burn-rate",
                expr,
                summary=f"Route {route} spends {{{{ $value | humanize }}}} USD/s over {burn.window}, over "
                f"{burn.factor:g}x its rate over the {burn.baseline} before (a runaway loop?)",
                for_=burn.for_,
                **where,
            )
        )
    return {"name": f"assay-budget.{namespace}.{name}", "rules": rules}


def prometheus_rule(body: Mapping[str, Any], group: Mapping[str, Any]) -> dict[str, Any]:
    """A monitoring.coreos.com/v1 PrometheusRule holding `group`, owned by the policy (deleted with it)."""
    meta = body["metadata"]
    return {
        "apiVersion": f"{PROMETHEUS_RULE_API[0]}/{PROMETHEUS_RULE_API[1]}",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"assay-budget-{meta['name']}"[:253],
            "namespace": meta["namespace"],
            "labels": {"app.kubernetes.io/managed-by": "assay", "assay.dev/routepolicy": meta["name"][:63]},
            "ownerReferences": [
                {
                    "apiVersion": body.get("apiVersion", "assay.dev/v1alpha1"),
                    "kind": "RoutePolicy",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {"groups": [dict(group)]},
    }

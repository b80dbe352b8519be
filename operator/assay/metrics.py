"""Prometheus metrics: every number assay exports is defined here, once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUALIFICATION_RUNS = Counter(
    "assay_qualification_runs_total", "Qualification runs decided, by verdict.", ["namespace", "verdict", "reason"]
)
SAMPLES = Counter("assay_qualification_samples_total", "Evaluated pairs consumed by the decision.", ["namespace"])
JUDGE_CALLS = Counter("assay_judge_calls_total", "Judge calls made.", ["namespace"])
JUDGE_CALLS_SAVED = Counter("assay_judge_calls_saved_total", "Judge calls saved by agreement checks.", ["namespace"])
PROMOTIONS = Counter("assay_promotions_total", "Routes switched to a candidate.", ["namespace", "policy"])
ROLLBACKS = Counter("assay_rollbacks_total", "Routes restored to the last known good one.", ["reason"])
ROLLBACK_LATENCY = Histogram(
    "assay_alert_to_rollback_seconds",
    "Time from receiving a drift alert to the restored route being written.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ALERTS = Counter("assay_alerts_received_total", "Alertmanager alerts received, by outcome.", ["outcome"])
GATEWAY_WRITE_FAILURES = Counter(
    "assay_gateway_write_failures_total", "Failed gateway writes (retried with backoff).", ["namespace", "kind"]
)
ACTIVE_ROUTE = Gauge(
    "assay_active_route_info", "1 for the model serving each policy's route.", ["namespace", "policy", "model"]
)
PROJECTED_SAVINGS = Gauge(
    "assay_projected_savings_ratio",
    "Projected saving of the active route vs the baseline (0..1).",
    ["namespace", "policy"],
)
COST_PER_REQUEST = Gauge(
    "assay_cost_per_request_usd", "Measured cost per request in the latest run.", ["namespace", "run", "side"]
)
ROLLBACKS_PENDING = Gauge(
    "assay_rollback_pending",
    "1 while a policy's rollback is decided but the gateway does not show the last known good route yet.",
    ["namespace", "policy"],
)
ROLLBACK_ATTEMPTS_FAILED = Counter(
    "assay_rollback_attempts_failed_total", "Rollback attempts that failed (each is retried).", ["namespace", "policy"]
)
WATCH_SAMPLES = Counter(
    "assay_watch_samples_total",
    "Live samples of promoted routes, by outcome: judged, judge_error, capped (daily sample cap), over_budget, "
    "ignored (not the promoted arm), dropped (queue full).",
    ["namespace", "policy", "outcome"],
)
WATCH_E_VALUE = Gauge(
    "assay_watch_e_value",
    "The drift detector's e-value on a watched route (alarm at its threshold).",
    ["namespace", "policy"],
)
WATCH_COST = Counter("assay_watch_cost_usd_total", "USD spent on watching promoted routes.", ["namespace", "policy"])
QUALITY_DRIFTS = Counter(
    "assay_quality_drift_total", "Proven drops of live quality, by action taken.", ["namespace", "policy", "action"]
)
ROUTE_SPEND = Gauge(
    "assay_route_spend_usd",
    "USD spent on each policy's route over the window (1d, 7d, 30d), from the gateway's metrics.",
    ["namespace", "policy", "window"],
)
REALIZED_SAVINGS = Gauge(
    "assay_realized_savings_ratio",
    "Saving measured live after a promotion: 1 - cost per request after / before (0..1; negative: dearer).",
    ["namespace", "policy"],
)
ROUTE_COST_PER_OUTCOME = Gauge(
    "assay_route_cost_per_outcome_usd",
    "USD per delivered outcome (spec.outcome) on each policy's route over the window (1d, 7d, 30d).",
    ["namespace", "policy", "window"],
)
ROUTE_FORECAST = Gauge(
    "assay_route_month_end_forecast_usd",
    "Forecast month-end spend on each policy's route (point, low and high of the 95% interval; left_on_table: "
    "what promoting its qualified candidate now would save this month).",
    ["namespace", "policy", "figure"],
)
LEADER = Gauge("assay_leader", "1 while this operator process holds the leader Lease.")
RECONCILE_ERRORS = Counter("assay_reconcile_errors_total", "Reconciliations that raised.", ["kind"])
BUDGET_ACTIONS = Counter(
    "assay_budget_actions_total",
    "Budget alerts acted on, by trigger (Daily, Monthly, BurnRate), action and dry_run (true: only recorded).",
    ["namespace", "policy", "trigger", "action", "dry_run"],
)

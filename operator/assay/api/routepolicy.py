"""RoutePolicy: one prompt type's route in an LLM gateway, its baseline, the cheaper candidates, the quality
bar, how to promote and when to roll back."""

from __future__ import annotations

import datetime
from typing import Any, Literal

import pydantic
from pydantic.config import JsonDict

from assay.api import common, evaluation
from assay.api.common import ApiModel

GatewayKind = Literal["LiteLLMConfigMap", "LiteLLMAdminAPI", "EnvoyAIGatewayRoute", "HTTPRoute"]


class Gateway(ApiModel):
    """Where the route lives and how assay switches it. Each kind needs its own reference."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.kind != 'LiteLLMConfigMap' || has(self.configMapRef)",
                    "configMapRef is required when kind is LiteLLMConfigMap",
                    field_path=".configMapRef",
                    reason="FieldValueRequired",
                ),
                common.cel(
                    "self.kind != 'LiteLLMAdminAPI' || (has(self.url) && has(self.masterKeySecretRef))",
                    "url and masterKeySecretRef are required when kind is LiteLLMAdminAPI",
                    field_path=".url",
                    reason="FieldValueRequired",
                ),
                common.cel(
                    "!(self.kind in ['EnvoyAIGatewayRoute', 'HTTPRoute']) || has(self.routeRef)",
                    "routeRef is required when kind is EnvoyAIGatewayRoute or HTTPRoute",
                    field_path=".routeRef",
                    reason="FieldValueRequired",
                ),
            ]
        }
    )

    kind: GatewayKind = pydantic.Field(
        description="LiteLLMConfigMap (config.yaml in a ConfigMap; switching restarts LiteLLM), "
        "LiteLLMAdminAPI (a LiteLLM proxy with a database: switched live through /config/update), "
        "EnvoyAIGatewayRoute (AIGatewayRoute backendRef weights) or HTTPRoute (Gateway API backendRef weights)."
    )
    route: str | None = pydantic.Field(
        default=None,
        max_length=253,
        description="The route name applications call (LiteLLM model alias, or the x-ai-eg-model header "
        "value). Defaults to spec.promptType.",
    )
    config_map_ref: common.ConfigMapKeyRef | None = pydantic.Field(
        default=None, description="LiteLLMConfigMap: the ConfigMap key holding LiteLLM's config.yaml."
    )
    deployment_ref: common.LocalObjectRef | None = pydantic.Field(
        default=None,
        description="LiteLLMConfigMap: the LiteLLM Deployment to roll after a config change. Omit if "
        "something else reloads LiteLLM.",
    )
    url: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        description="LiteLLMAdminAPI: base URL of the LiteLLM proxy, e.g. http://litellm.llm.svc:4000. The "
        "master key is sent there.",
        json_schema_extra=common.validations(common.URL_RULES),
    )
    master_key_secret_ref: common.SecretKeyRef | None = pydantic.Field(
        default=None, description="LiteLLMAdminAPI: the Secret key holding LiteLLM's master key."
    )
    route_ref: common.LocalObjectRef | None = pydantic.Field(
        default=None, description="EnvoyAIGatewayRoute / HTTPRoute: the route object to reweight."
    )
    rule_index: int = pydantic.Field(
        default=0,
        ge=0,
        le=15,
        description="EnvoyAIGatewayRoute / HTTPRoute: which rule of the route to reweight.",
    )


class Promotion(ApiModel):
    """How traffic moves to a candidate that passed."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.strategy != 'Canary' || (size(self.steps) > 0 && self.steps[size(self.steps) - 1] == 100"
                    " && self.steps.isSorted() && self.steps.all(s, self.steps.exists_one(t, t == s)))",
                    "Canary steps must be strictly ascending percentages (no step twice) ending at 100, "
                    "e.g. [10, 50, 100]",
                    field_path=".steps",
                )
            ]
        }
    )

    strategy: Literal["Direct", "Canary"] = pydantic.Field(
        default="Direct", description="Direct: one switch to the candidate. Canary: weights in steps."
    )
    steps: list[int] = pydantic.Field(
        default_factory=lambda: [10, 50, 100],
        max_length=10,
        description="Canary: candidate traffic percentages, ascending, ending at 100.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 100}},
    )
    soak_seconds: int = pydantic.Field(
        default=300, ge=0, le=7 * 24 * 3600, description="Canary: time at each step before the next."
    )
    automatic: bool = pydantic.Field(
        default=True,
        description="Promote as soon as a candidate passes. When false, wait for the assay.dev/promote annotation.",
    )


# Alert labels are Prometheus label names; values are bounded so a selector stays a selector.
ALERT_LABEL_NAME_PATTERN = "^[a-zA-Z_][a-zA-Z0-9_]*$"
ALERT_LABEL_NAME_MESSAGE = "must be an alert label name: letters, digits and '_', not starting with a digit"
ALERT_LABEL_VALUE_MAX = 1024
_ALERT_LABEL_VALUE: JsonDict = {"type": "string", "maxLength": ALERT_LABEL_VALUE_MAX}


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement, as in metav1.LabelSelectorRequirement."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0",
                    "values must list at least one value for In and NotIn, and be empty for Exists and DoesNotExist",
                    field_path=".values",
                )
            ]
        }
    )

    key: str = pydantic.Field(
        description="The alert label's name.",
        min_length=1,
        max_length=128,
        json_schema_extra=common.validations(
            [common.cel(f"self.matches('{ALERT_LABEL_NAME_PATTERN}')", ALERT_LABEL_NAME_MESSAGE)]
        ),
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = pydantic.Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn; empty otherwise.",
        json_schema_extra={"items": _ALERT_LABEL_VALUE},
    )


class AlertSelector(ApiModel):
    """Which Alertmanager alerts mean this route drifted: a label selector over the alert's labels."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && "
                    "self.matchExpressions.exists(r, r.operator in ['In', 'Exists']))",
                    "must require something of an alert (a matchLabels entry, or an In or Exists expression): a "
                    "selector of exclusions only matches no alert",
                )
            ]
        }
    )

    match_labels: dict[str, str] = pydantic.Field(
        default_factory=dict,
        max_length=32,
        description="Alert labels that must all be equal to these values.",
        json_schema_extra={
            "additionalProperties": _ALERT_LABEL_VALUE,
            **common.validations(
                [
                    common.cel(
                        f"self.all(k, size(k) <= 128 && k.matches('{ALERT_LABEL_NAME_PATTERN}'))",
                        "keys " + ALERT_LABEL_NAME_MESSAGE + " (at most 128 characters)",
                    )
                ]
            ),
        },
    )
    match_expressions: list[LabelSelectorRequirement] = pydantic.Field(
        default_factory=list,
        max_length=32,
        description="Label selector requirements, all of which must hold.",
    )


class Rollback(ApiModel):
    """When traffic goes back to the last known good route."""

    alert_selector: AlertSelector | None = pydantic.Field(
        default=None,
        description="Firing alerts whose labels match roll the route back. An alert with a 'namespace' label "
        "matches only policies of that namespace; one without matches only policies that set "
        "matchAlertsWithoutNamespace. Omit to roll back only by hand.",
    )
    match_alerts_without_namespace: bool = pydantic.Field(
        default=False,
        description="Also let alerts that carry no 'namespace' label (cluster-wide rules) roll this policy back "
        "when they match the selector. Off by default: such an alert could come from any team's rule.",
    )
    requalify_after_rollback: bool = pydantic.Field(
        default=False,
        description="After a rollback, qualify again automatically. When false (default), the policy stays "
        "rolled back until the assay.dev/requalify annotation is set.",
    )


class Watch(ApiModel):
    """Watching quality on live traffic after a promotion: a share of the requests the promoted arm served is
    replayed to the last known good baseline and judged blind in both orders, as in qualification; an
    anytime-valid drift test on the scores acts on a proven drop."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.meanDaysBetweenFalseAlarms * double(self.maxSamplesPerDay) > 1.0",
                    "meanDaysBetweenFalseAlarms times maxSamplesPerDay must be above 1: it is the drift "
                    "detector's threshold (raise either)",
                    field_path=".meanDaysBetweenFalseAlarms",
                ),
            ]
        }
    )

    sample_rate: float = pydantic.Field(
        default=0.01,
        gt=0,
        le=1,
        description="Share of the promoted arm's requests sampled for judging, e.g. 0.01 for 1%.",
    )
    max_samples_per_day: int = pydantic.Field(
        default=500,
        ge=1,
        le=1_000_000,
        description="Most samples judged per UTC day, spread over the day (a sample is admitted only while the "
        "day's count is below this cap times the share of the day elapsed, plus one hour's worth).",
    )
    max_cost_per_day: float = pydantic.Field(
        default=5.0,
        ge=0,
        le=100_000,
        description="Most USD a UTC day spent on watching (baseline replays and judge calls, priced like "
        "qualification). Once reached, the route is not watched until the next day (condition Watched False, "
        "reason BudgetExhausted).",
    )
    mode: Literal["Window", "Indefinite"] = pydantic.Field(
        default="Indefinite",
        description="Window: the qualification's betting test in reverse over the first windowSamples samples "
        "after the promotion, at level alpha. Indefinite: a CUSUM e-detector whose threshold gives the stated "
        "mean time between false alarms.",
    )
    window_samples: int = pydantic.Field(
        default=500, ge=1, le=2000, description="Window: samples watched after the promotion."
    )
    alpha: float = pydantic.Field(
        default=0.05, gt=0, lt=0.5, description="Window: the chance of a false alarm within the window."
    )
    mean_days_between_false_alarms: float = pydantic.Field(
        default=365,
        gt=0,
        le=36_500,
        description="Indefinite: the stated mean time between false alarms when quality holds; the detector's "
        "threshold is this times maxSamplesPerDay.",
    )
    drift_gap: float = pydantic.Field(
        default=0.05,
        ge=0,
        lt=0.45,
        description="How far below the qualification bar (0.5 - margin) the live mean score must fall to be a "
        "drift: a candidate that sits at the bar it qualified against does not alarm.",
    )
    on_drift: Literal["RollBack", "HoldForApproval"] = pydantic.Field(
        default="RollBack",
        description="RollBack: restore the last known good route (reason QualityDrift). HoldForApproval: set "
        "the QualityDrift condition and an Event, and wait for the assay.dev/rollback annotation.",
    )
    starved_after_seconds: int = pydantic.Field(
        default=6 * 3600,
        ge=10,
        le=7 * 24 * 3600,
        description="No sample for this long while promoted: not watched (reason SamplerStarved).",
    )
    max_judge_error_rate: float = pydantic.Field(
        default=0.2,
        gt=0,
        le=1,
        description="Above this share of failed or unreadable judgings among the recent samples: not watched "
        "(reason JudgeErrors).",
    )


# Durations both Prometheus and CEL read (CEL has no "d").
PROM_DURATION_PATTERN = r"^[1-9][0-9]{0,4}(s|m|h)$"


class BurnRate(ApiModel):
    """A runaway loop: the route's spend rate over `window` several times its rate over the trailing `baseline`
    before it, and above a floor (so a quiet route's first requests are no runaway)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "duration(self.window) < duration(self.baseline)",
                    "burnRate.window must be shorter than burnRate.baseline",
                    field_path=".window",
                )
            ]
        }
    )

    factor: float = pydantic.Field(
        default=10.0,
        gt=1,
        le=10_000,
        description="How many times the trailing baseline's spend rate the recent rate must reach.",
    )
    window: str = pydantic.Field(
        default="5m",
        max_length=8,
        pattern=PROM_DURATION_PATTERN,
        description="The recent window the spend rate is measured over (a Prometheus duration: 30s, 5m, 1h).",
    )
    baseline: str = pydantic.Field(
        default="1h",
        max_length=8,
        pattern=PROM_DURATION_PATTERN,
        description="The trailing window before `window` that gives the usual spend rate.",
    )
    min_usd_per_hour: float = pydantic.Field(
        default=1.0,
        gt=0,
        le=1_000_000,
        description="The recent rate must also exceed this many USD per hour: bursts below it are not runaways.",
    )
    for_: str = pydantic.Field(
        default="1m",
        alias="for",
        max_length=8,
        pattern=r"^(0|[1-9][0-9]{0,4}(s|m|h))$",
        description="How long the condition must hold before the rule fires (Prometheus `for`; 0 for at once).",
    )


class Budget(ApiModel):
    """Spend limits on the route and what happens when one is crossed. The operator renders them as Prometheus
    alert rules (`assay budget-rules`, or PrometheusRule objects); their alerts reach the operator through
    Alertmanager's webhook, like drift alerts, and the action below is taken once per firing."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "has(self.dailyUsd) || has(self.monthlyUsd) || has(self.burnRate)",
                    "budget needs at least one of dailyUsd, monthlyUsd or burnRate",
                    field_path=".dailyUsd",
                )
            ]
        }
    )

    daily_usd: float | None = pydantic.Field(
        default=None, gt=0, le=1e9, description="Most USD the route may spend over the last 24 hours (rolling)."
    )
    monthly_usd: float | None = pydantic.Field(
        default=None, gt=0, le=1e10, description="Most USD the route may spend over the last 30 days (rolling)."
    )
    burn_rate: BurnRate | None = pydantic.Field(default=None, description="Catch a runaway loop within minutes.")
    action: Literal["Alert", "FreezePromotions", "ShiftToQualified", "RollBack"] = pydantic.Field(
        default="Alert",
        description="Alert: a condition and an Event only. FreezePromotions: no promotion starts or advances "
        "while a budget alert fires. ShiftToQualified: promote the cheapest candidate with a Passed qualification "
        "younger than qualificationMaxAgeDays. RollBack: restore the last known good route.",
    )
    dry_run: bool = pydantic.Field(
        default=False,
        description="Record what the action would have done (condition, Event, status.budget.lastAction) "
        "without doing it.",
    )
    qualification_max_age_days: int = pydantic.Field(
        default=30,
        ge=1,
        le=3650,
        description="ShiftToQualified: a qualification older than this many days is not trusted to shift to.",
    )


class Qualification(ApiModel):
    """What each candidate is evaluated on and how the verdict is reached."""

    endpoint: evaluation.Endpoint = pydantic.Field(
        description="The OpenAI-compatible endpoint evaluation traffic goes through (usually the gateway)."
    )
    dataset: evaluation.Dataset = pydantic.Field(description="The team's own recorded prompts.")
    judge: evaluation.Judge = pydantic.Field(description="The blind pairwise judge.")
    test: evaluation.TestSettings = common.nested(evaluation.TestSettings, "The sequential test and guardrails.")
    format: evaluation.OutputFormat = common.nested(evaluation.OutputFormat, "The answers' required format.")
    execution: evaluation.Execution = common.nested(evaluation.Execution, "How the evaluation Job runs.")


class RoutePolicySpec(ApiModel):
    """The desired state: qualify candidates for one route, promote a winner, roll back on drift."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.candidates.all(c, c.model != self.baseline.model)",
                    "every candidates[].model must differ from baseline.model",
                    field_path=".candidates",
                ),
                common.cel(
                    "self.qualification.judge.model != self.baseline.model",
                    "qualification.judge.model must differ from baseline.model: the judge must not be a contestant",
                    field_path=".qualification.judge.model",
                ),
                common.cel(
                    "self.candidates.all(c, c.model != self.qualification.judge.model)",
                    "qualification.judge.model must differ from every candidates[].model: the judge must not "
                    "be a contestant",
                    field_path=".qualification.judge.model",
                ),
                common.cel(
                    "!has(self.pricing) || self.pricing.all(p, self.pricing.exists_one(q, q.model == p.model))",
                    "pricing lists a model more than once",
                    field_path=".pricing",
                ),
                common.cel(
                    "self.candidates.all(c, self.candidates.exists_one(d, d.model == c.model && "
                    "(has(d.systemPrompt) ? d.systemPrompt : '') == (has(c.systemPrompt) ? c.systemPrompt : '')))",
                    "two candidates have the same model and systemPrompt: the same experiment twice (one model "
                    "with different systemPrompts is a legitimate pair of variants)",
                    field_path=".candidates",
                ),
                common.cel(
                    "!(self.gateway.kind in ['EnvoyAIGatewayRoute', 'HTTPRoute']) || self.candidates.all(c, "
                    "(has(c.backend) ? c.backend : c.model) != "
                    "(has(self.baseline.backend) ? self.baseline.backend : self.baseline.model))",
                    "every candidates[].backend (default: its model) must differ from baseline.backend (default: "
                    "its model): a weight gateway could not tell them apart",
                    field_path=".candidates",
                ),
                common.cel(
                    "!has(self.budget) || self.gateway.kind != 'HTTPRoute'",
                    "budget needs a gateway that exports spend metrics (LiteLLM or Envoy AI Gateway); an "
                    "HTTPRoute exports none",
                    field_path=".budget",
                ),
                common.cel(
                    "!has(self.watch) || self.watch.driftGap < 0.5 - self.qualification.test.margin",
                    "watch.driftGap must be below 0.5 - qualification.test.margin: the drift margin must stay above 0",
                    field_path=".watch.driftGap",
                ),
            ]
        }
    )

    prompt_type: str = pydantic.Field(
        description="The task this route serves, e.g. support-summary. Also the default route name.",
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_./:]*[A-Za-z0-9])?$",
    )
    gateway: Gateway = pydantic.Field(description="The gateway route assay qualifies, promotes and rolls back.")
    baseline: evaluation.ModelRoute = pydantic.Field(description="The current model: the quality bar.")
    candidates: list[evaluation.Candidate] = pydantic.Field(
        min_length=1,
        max_length=16,
        description="Cheaper models to qualify, each in its own QualificationRun. At least one.",
        json_schema_extra=common.list_map("name"),
    )
    qualification: Qualification = pydantic.Field(description="How candidates are evaluated.")
    promotion: Promotion = common.nested(Promotion, "How a passing candidate gets the traffic.")
    rollback: Rollback = common.nested(Rollback, "When the route goes back to the last known good one.")
    watch: Watch | None = pydantic.Field(
        default=None, description="Watch quality on live traffic after a promotion. Omit not to watch."
    )
    outcome: Outcome | None = pydantic.Field(
        default=None, description="What the route delivers (e.g. resolved tickets), for the cost per outcome."
    )
    budget: Budget | None = pydantic.Field(
        default=None, description="Spend limits on the route and the action when one is crossed. Omit for none."
    )
    pricing: list[evaluation.ModelPrice] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Token prices per model, for cost and projected savings. Models not listed fall back to "
        "assay's built-in price table.",
    )
    paused: bool = pydantic.Field(
        default=False, description="Stop creating runs and writing the gateway (rollbacks still happen)."
    )


PolicyPhase = Literal[
    "Pending", "Qualifying", "Qualified", "NotQualified", "Promoting", "Promoted", "RolledBack", "Degraded"
]


class RouteState(ApiModel):
    """A gateway route as assay read or wrote it: which model serves it, with which weights."""

    model: str | None = pydantic.Field(default=None, description="Model (or model group) that serves the route.")
    candidate: str | None = pydantic.Field(
        default=None, description="Candidate name when a candidate serves the route; empty for the baseline."
    )
    weights: dict[str, int] = pydantic.Field(
        default_factory=dict, description="Backend weights, for weight-based gateways."
    )
    snapshot: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="The adapter's exact record of the route's entries, enough to restore them in one write.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    fingerprint: str | None = pydantic.Field(
        default=None, description="Hash of the route's entries, to notice edits made behind assay's back."
    )
    observed_at: datetime.datetime | None = pydantic.Field(default=None, description="When it was read.")


class CandidateStatus(ApiModel):
    """The latest qualification of one candidate."""

    name: str = pydantic.Field(description="Candidate name.")
    run: str | None = pydantic.Field(default=None, description="The QualificationRun deciding it.")
    phase: str | None = pydantic.Field(default=None, description="The run's phase.")
    reason: str | None = pydantic.Field(default=None, description="The run's reason.")
    estimate: float | None = pydantic.Field(default=None, description="Estimated mean score.")
    lower_bound: float | None = pydantic.Field(default=None, description="Anytime-valid lower bound.")
    cost_per_request: float | None = pydantic.Field(default=None, description="Measured USD per request.")
    savings_percent: float | None = pydantic.Field(default=None, description="Projected saving vs the baseline.")
    decided_at: datetime.datetime | None = pydantic.Field(default=None, description="When the run's verdict was set.")


class Savings(ApiModel):
    """Projected savings of the active route against the baseline, from measured tokens and prices."""

    percent: float | None = pydantic.Field(default=None, description="Saving in percent of the baseline's cost.")
    per_1k_requests: float | None = pydantic.Field(
        default=None, alias="per1kRequests", description="Saving in USD per 1,000 requests."
    )
    display: str | None = pydantic.Field(default=None, description="Human form, e.g. '62%'.")


IntentSource = Literal["Automatic", "Command", "Alert", "GatewayChange", "Deletion", "Watch", "Budget"]


class PendingAction(ApiModel):
    """A route change assay decided and has not yet finished (an intent): written before acting, so a restart
    converges. The one route writer of the gateway location carries it out and clears it in the same write that
    records the result. A RollBack replaces a pending Promote; nothing replaces a pending RollBack."""

    action: Literal["Promote", "RollBack"] = pydantic.Field(description="Promote or RollBack.")
    id: str | None = pydantic.Field(
        default=None, max_length=32, description="Identifies this intent, so a waiter can tell when it is done."
    )
    source: IntentSource | None = pydantic.Field(
        default=None,
        description="What asked for it: Automatic (a passed qualification), Command (an assay.dev/* annotation), "
        "Alert (a drift alert), GatewayChange (spec.gateway edited while promoted), Deletion, Watch (assay's own "
        "live quality watch), Budget (a budget alert's action).",
    )
    candidate: str | None = pydantic.Field(default=None, description="Candidate being promoted.")
    step: int | None = pydantic.Field(default=None, description="Canary step index being applied.")
    reason: str | None = pydantic.Field(default=None, description="Why (alert name, Manual, QualificationPassed).")
    requested_at: datetime.datetime | None = pydantic.Field(default=None, description="When it was decided.")
    started_at: datetime.datetime | None = pydantic.Field(
        default=None, description="When the triggering signal (e.g. the alert) was received."
    )
    attempts: int = pydantic.Field(default=0, description="Gateway write attempts made so far.")
    retry_at: datetime.datetime | None = pydantic.Field(
        default=None, description="Earliest time of the next attempt (exponential backoff after failures)."
    )
    last_error: str | None = pydantic.Field(
        default=None, max_length=2048, description="Why the last attempt failed (it is retried with backoff)."
    )


class RouteSource(ApiModel):
    """Which gateway route the snapshot in lastKnownGood was taken from: a rollback restores it there, even after
    spec.gateway changed."""

    # Kept unvalidated: admission rules added to spec.gateway later must never block writing status.
    gateway: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="spec.gateway at the time of the snapshot (secret references only, never values).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    route: str = pydantic.Field(description="The route name (spec.gateway.route, defaulting to spec.promptType).")
    owned_backends: list[str] = pydantic.Field(
        default_factory=list, max_length=64, description="Backends whose weights the policy owned then."
    )


class WatchStatus(ApiModel):
    """The live quality watch of the promoted candidate (spec.watch)."""

    candidate: str | None = pydantic.Field(default=None, description="The promoted candidate being watched.")
    promoted_at: datetime.datetime | None = pydantic.Field(
        default=None, description="When that promotion happened (a new promotion starts a new watch)."
    )
    mode: str | None = pydantic.Field(default=None, description="Window or Indefinite.")
    samples: int = pydantic.Field(default=0, description="Samples judged against the baseline.")
    wins: int = pydantic.Field(default=0, description="Samples the candidate won (score above 0.5).")
    ties: int = pydantic.Field(default=0, description="Samples tied (score 0.5).")
    losses: int = pydantic.Field(default=0, description="Samples the candidate lost (score below 0.5).")
    judge_errors: int = pydantic.Field(default=0, description="Samples whose replay or judging failed.")
    mean_score: float | None = pydantic.Field(default=None, description="Mean score of the judged samples.")
    drift_margin: float | None = pydantic.Field(default=None, description="The mean score below which is drift.")
    e_value: float | None = pydantic.Field(default=None, description="The drift detector's evidence against no drift.")
    threshold: float | None = pydantic.Field(default=None, description="The e-value at which the detector alarms.")
    alarmed_at: int | None = pydantic.Field(default=None, description="The sample at which drift was proven.")
    cost_usd: float = pydantic.Field(default=0.0, description="USD spent on watching this promotion.")
    day: str | None = pydantic.Field(default=None, description="The UTC day the daily counts are for.")
    samples_today: int = pydantic.Field(default=0, description="Samples judged on that day.")
    cost_today_usd: float = pydantic.Field(default=0.0, description="USD spent on that day.")
    last_sample_at: datetime.datetime | None = pydantic.Field(default=None, description="When the last sample came.")
    not_watched: str | None = pydantic.Field(
        default=None, description="Why the route is not watched now (SamplerStarved, BudgetExhausted, JudgeErrors)."
    )
    recent_errors: list[bool] = pydantic.Field(
        default_factory=list, max_length=100, description="Whether each recent sample's judging failed (newest last)."
    )
    detector: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="The detector's exact state, to resume it.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Outcome(ApiModel):
    """What the route delivers, counted by the application: a PromQL query for the number of outcomes over a
    window (`$window` stands for 1d, 7d and 30d), e.g.
    `sum(increase(tickets_resolved_total{queue="support"}[$window]))`. status.spend then shows the cost per
    outcome, before and after a promotion."""

    name: str = pydantic.Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9 _./]*[A-Za-z0-9])?$",
        description="What one outcome is, for people: e.g. 'resolved ticket'.",
    )
    query: str = pydantic.Field(
        min_length=1,
        max_length=2048,
        pattern=r"\$window",
        description="PromQL giving the number of outcomes over `$window` (must contain `$window`; a single "
        "series, or several summed). Read through the operator's Prometheus with the spend.",
    )


class SpendFigure(ApiModel):
    """The route's spend over one window, read from the gateway's metrics through Prometheus."""

    usd: float = pydantic.Field(description="US dollars spent on the route over the window.")
    requests: float | None = pydantic.Field(
        default=None, description="Requests to the route over the window (absent: the gateway counts none)."
    )
    cost_per_request_usd: float | None = pydantic.Field(
        default=None, description="usd / requests: the live cost per request (absent without requests)."
    )
    outcomes: float | None = pydantic.Field(
        default=None, description="Outcomes over the window (spec.outcome; absent without it or when unread)."
    )
    cost_per_outcome_usd: float | None = pydantic.Field(
        default=None, description="usd / outcomes: the cost per delivered outcome (absent without outcomes)."
    )
    display: str | None = pydantic.Field(default=None, description="Human form, e.g. '$12.34'.")


class RealizedSavings(ApiModel):
    """What a promotion saved, measured live: the route's cost per request after it against before it, next to the
    qualification's projection (the same traffic mix is assumed: docs/spend.md)."""

    baseline_cost_per_request_usd: float | None = pydantic.Field(
        default=None, description="The baseline's live cost per request over the 7 days before the promotion."
    )
    promoted_cost_per_request_usd: float | None = pydantic.Field(
        default=None, description="The promoted route's live cost per request over the last day (1d)."
    )
    ratio: float | None = pydantic.Field(
        default=None, description="1 - promoted / baseline cost per request; absent until a day after the promotion."
    )
    projected_ratio: float | None = pydantic.Field(
        default=None, description="The qualification's projected saving (status.savings.percent / 100)."
    )
    baseline_cost_per_outcome_usd: float | None = pydantic.Field(
        default=None, description="With spec.outcome: the baseline's cost per outcome over the 7 days before."
    )
    promoted_cost_per_outcome_usd: float | None = pydantic.Field(
        default=None, description="With spec.outcome: the promoted route's cost per outcome over the last day."
    )
    display: str | None = pydantic.Field(default=None, description="Human form, e.g. '41% (projected 45%)'.")


class SpendForecast(ApiModel):
    """This UTC month's spend on the route at month end: spend so far plus the complete days' mean for each day
    left, with a 95% prediction interval from their day-to-day spread (docs/spend.md)."""

    month: str = pydantic.Field(description="The month forecast, e.g. 2026-12.")
    spent_usd: float = pydantic.Field(description="USD spent this month so far.")
    month_end_usd: float = pydantic.Field(description="Forecast USD at month end.")
    low_usd: float | None = pydantic.Field(default=None, description="Low end of the 95% interval.")
    high_usd: float | None = pydantic.Field(default=None, description="High end of the 95% interval.")
    method: str = pydantic.Field(
        description="daily-mean-t (two or more complete days) or run-rate (fewer: no interval)."
    )
    days_observed: int = pydantic.Field(description="Complete days of this month the forecast is built on.")
    left_on_table_usd: float | None = pydantic.Field(
        default=None,
        description="With a qualified candidate not promoted: USD this month would cost less if it were promoted "
        "now (its projected saving on what is not yet spent).",
    )
    display: str | None = pydantic.Field(default=None, description="Human form, e.g. '$930 ($880-$990)'.")


class SpendStatus(ApiModel):
    """Spend on the route, read by the operator's spend loop (one batched read an interval for every policy),
    written only when a figure changed. Calls tagged assay-watch (the watch's replays and judge calls) are left
    out. When Prometheus cannot be read these figures are kept as they were and SpendKnown turns False."""

    read_at: datetime.datetime | None = pydantic.Field(
        default=None, description="When the figures below were read (the last read that changed them)."
    )
    day: SpendFigure | None = pydantic.Field(default=None, description="The last day (1d).")
    week: SpendFigure | None = pydantic.Field(default=None, description="The last 7 days (7d).")
    month: SpendFigure | None = pydantic.Field(default=None, description="The last 30 days (30d).")
    realized: RealizedSavings | None = pydantic.Field(
        default=None, description="After a promotion: the saving measured live against the projection."
    )
    forecast: SpendForecast | None = pydantic.Field(
        default=None, description="Month-end spend on the route, and the money left on the table."
    )


class BudgetAlert(ApiModel):
    """A budget alert firing now."""

    trigger: Literal["Daily", "Monthly", "BurnRate"] = pydantic.Field(description="Which limit was crossed.")
    alert: str = pydantic.Field(max_length=256, description="The alert's name.")
    since: datetime.datetime | None = pydantic.Field(default=None, description="When it started firing.")
    key: str | None = pydantic.Field(default=None, max_length=64, description="The firing's identity (dedup).")


class BudgetAction(ApiModel):
    """What a budget alert made assay do (or, in a dry run, would have)."""

    trigger: str = pydantic.Field(description="Daily, Monthly or BurnRate.")
    action: str = pydantic.Field(description="Alert, FreezePromotions, ShiftToQualified or RollBack.")
    dry_run: bool = pydantic.Field(default=False, description="Only recorded, not done.")
    at: datetime.datetime | None = pydantic.Field(default=None, description="When.")
    message: str | None = pydantic.Field(default=None, max_length=1024, description="What was (or would be) done.")


class BudgetStatus(ApiModel):
    """spec.budget at work: the budget alerts firing now and the last action they caused."""

    firing: list[BudgetAlert] = pydantic.Field(
        default_factory=list, max_length=8, description="Budget alerts firing now (resolved ones are removed)."
    )
    last_action: BudgetAction | None = pydantic.Field(default=None, description="The last action taken.")


class RoutePolicyStatus(ApiModel):
    """What assay observed and did."""

    phase: PolicyPhase | None = pydantic.Field(default=None, description="Where the policy is in its life.")
    observed_generation: int | None = pydantic.Field(default=None, description="The generation last reconciled.")
    conditions: list[common.Condition] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Ready, Qualified, Promoted, RolledBack, Degraded, Watched, QualityDrift, SpendKnown, "
        "OutcomeKnown, BudgetExceeded.",
        json_schema_extra=common.list_map("type"),
    )
    active_route: RouteState | None = pydantic.Field(default=None, description="The route as assay last set it.")
    last_known_good: RouteState | None = pydantic.Field(
        default=None,
        description="The baseline route snapshot taken before the first write: always restorable.",
    )
    candidates: list[CandidateStatus] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Latest qualification of each candidate.",
        json_schema_extra=common.list_map("name"),
    )
    promoted_candidate: str | None = pydantic.Field(default=None, description="Candidate serving the route.")
    best_candidate: str | None = pydantic.Field(default=None, description="Best qualified candidate so far.")
    lower_bound: float | None = pydantic.Field(default=None, description="Lower bound of the best candidate.")
    savings: Savings | None = pydantic.Field(default=None, description="Projected savings of the active route.")
    pending: PendingAction | None = pydantic.Field(default=None, description="An action under way.")
    route_source: RouteSource | None = pydantic.Field(
        default=None, description="The gateway route lastKnownGood was read from (restores go there)."
    )
    canary_step: int | None = pydantic.Field(default=None, description="Current canary step index.")
    step_started_at: datetime.datetime | None = pydantic.Field(default=None, description="When this step began.")
    last_alert: str | None = pydantic.Field(default=None, description="Name of the last drift alert acted on.")
    handled_alerts: list[str] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Fingerprints of alerts already acted on (newest last).",
    )
    handled_commands: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Manual command annotations already acted on, by annotation value."
    )
    qualification_epoch: int = pydantic.Field(
        default=0, description="Bumped by each requalification; part of the QualificationRun names."
    )
    watch: WatchStatus | None = pydantic.Field(default=None, description="The live quality watch (spec.watch).")
    spend: SpendStatus | None = pydantic.Field(
        default=None, description="Spend on the route from the gateway's metrics (the operator's Prometheus)."
    )
    budget: BudgetStatus | None = pydantic.Field(default=None, description="Budget alerts and their actions.")


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Active", "type": "string", "jsonPath": ".status.activeRoute.model"},
    {"name": "Candidate", "type": "string", "jsonPath": ".status.bestCandidate"},
    {"name": "Lower-Bound", "type": "number", "format": "float", "jsonPath": ".status.lowerBound"},
    {"name": "Savings", "type": "string", "jsonPath": ".status.savings.display"},
    {"name": "Spend/1d", "type": "string", "jsonPath": ".status.spend.day.display"},
    {"name": "Realized", "type": "string", "jsonPath": ".status.spend.realized.display", "priority": 1},
    {"name": "Month-End", "type": "string", "jsonPath": ".status.spend.forecast.display", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

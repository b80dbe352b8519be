"""QualificationRun: one evaluation of one candidate against the baseline, run as a batch/v1 Job, decided
Passed / Failed / Inconclusive with stated confidence."""

from __future__ import annotations

import datetime
from typing import Any, Literal

import pydantic

from assay.api import common, evaluation
from assay.api.common import ApiModel


class QualificationRunSpec(ApiModel):
    """Everything one evaluation needs, frozen at creation: a run is evidence, so it is not edited."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.candidate.model != self.baseline.model",
                    "candidate.model must differ from baseline.model",
                    field_path=".candidate.model",
                ),
                common.cel(
                    "self.judge.model != self.baseline.model && self.judge.model != self.candidate.model",
                    "judge.model must differ from baseline.model and candidate.model: the judge must not be a "
                    "contestant",
                    field_path=".judge.model",
                ),
                common.cel("self == oldSelf", "spec is immutable: create a new QualificationRun instead"),
            ]
        }
    )

    policy_ref: common.LocalObjectRef | None = pydantic.Field(
        default=None, description="The RoutePolicy this run qualifies for. Empty for a run created by hand."
    )
    endpoint: evaluation.Endpoint = pydantic.Field(description="Where evaluation traffic goes.")
    baseline: evaluation.ModelRoute = pydantic.Field(description="The current model.")
    candidate: evaluation.Candidate = pydantic.Field(description="The cheaper model under test.")
    dataset: evaluation.Dataset = pydantic.Field(description="The prompts.")
    judge: evaluation.Judge = pydantic.Field(description="The blind pairwise judge.")
    test: evaluation.TestSettings = common.nested(evaluation.TestSettings, "The sequential test and guardrails.")
    format: evaluation.OutputFormat = common.nested(evaluation.OutputFormat, "The answers' required format.")
    execution: evaluation.Execution = common.nested(evaluation.Execution, "How the evaluation Job runs.")
    candidates_in_pool: int = pydantic.Field(
        default=1,
        ge=1,
        le=64,
        description="Candidates tested on the same data: alpha is divided by this (multiplicity correction).",
    )
    pricing: list[evaluation.ModelPrice] = pydantic.Field(
        default_factory=list, max_length=64, description="Token prices per model (USD per million tokens)."
    )


RunPhase = Literal["Pending", "Running", "Passed", "Failed", "Inconclusive", "Error"]


class Progress(ApiModel):
    """How far the evaluation got."""

    evaluated: int = pydantic.Field(default=0, description="Pairs in the decided prefix (controls included).")
    samples: int = pydantic.Field(default=0, description="Non-control pairs that entered the estimate.")
    controls: int = pydantic.Field(default=0, description="Sensitivity controls evaluated.")
    total: int = pydantic.Field(default=0, description="Pairs the dataset and maxSamples allow.")
    invalid_lines: int = pydantic.Field(default=0, description="Malformed dataset lines skipped.")
    display: str | None = pydantic.Field(default=None, description="Human form, e.g. 120/1200.")


class SidePair(ApiModel):
    """One number for the baseline and one for the candidate."""

    baseline: float | None = pydantic.Field(default=None, description="Baseline's value.")
    candidate: float | None = pydantic.Field(default=None, description="Candidate's value.")


class JudgeCalls(ApiModel):
    """Judge calls made, and saved by the agreement checks."""

    made: int = pydantic.Field(default=0, description="Judge calls made.")
    saved: int = pydantic.Field(default=0, description="Judge calls the agreement checks made unnecessary.")


class Statistics(ApiModel):
    """The evidence, summarized: the sequential test and every guardrail."""

    estimate: float | None = pydantic.Field(default=None, description="Mean score (0.5 = as good as baseline).")
    lower_bound: float | None = pydantic.Field(default=None, description="Anytime-valid lower confidence bound.")
    upper_bound: float | None = pydantic.Field(default=None, description="Anytime-valid upper confidence bound.")
    p_value: float | None = pydantic.Field(default=None, description="Anytime-valid p-value of H0: mu <= 0.5-margin.")
    threshold: float | None = pydantic.Field(default=None, description="0.5 - margin: the bar the lower bound clears.")
    tie_rate: float | None = pydantic.Field(default=None, description="Share of judge verdicts that were ties.")
    agreement_rate: float | None = pydantic.Field(
        default=None, description="Share of pairs whose answers agreed without a judge call."
    )
    swap_consistency: float | None = pydantic.Field(
        default=None, description="Share of judged pairs whose two orders agree."
    )
    control_catch_rate: float | None = pydantic.Field(
        default=None, description="Share of degraded controls the judge caught."
    )
    length_ratio: float | None = pydantic.Field(default=None, description="Mean candidate / baseline answer length.")
    length_controlled_estimate: float | None = pydantic.Field(
        default=None, description="Estimate at equal length, when the length ratio calls for it."
    )
    format_pass_rate: SidePair | None = pydantic.Field(default=None, description="Format pass rates.")
    judge_calls: JudgeCalls | None = pydantic.Field(default=None, description="Judge calls made and saved.")
    cost_per_request: SidePair | None = pydantic.Field(default=None, description="Measured USD per request.")
    latency_ms: SidePair | None = pydantic.Field(default=None, description="Median latency per request (ms).")
    tokens_per_request: SidePair | None = pydantic.Field(default=None, description="Mean tokens per request.")


class QualificationRunStatus(ApiModel):
    """Progress, statistics and the verdict."""

    phase: RunPhase | None = pydantic.Field(default=None, description="Pending, Running or the verdict.")
    reason: str | None = pydantic.Field(default=None, description="Why the run is in its phase (CamelCase).")
    message: str | None = pydantic.Field(default=None, description="The verdict or problem in a sentence.")
    observed_generation: int | None = pydantic.Field(default=None, description="The generation last reconciled.")
    conditions: list[common.Condition] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Ready, Complete.",
        json_schema_extra=common.list_map("type"),
    )
    job_name: str | None = pydantic.Field(default=None, description="The evaluation Job.")
    spec_hash: str | None = pydantic.Field(default=None, description="Hash of the spec the verdict is about.")
    progress: Progress | None = pydantic.Field(default=None, description="How far the evaluation got.")
    statistics: Statistics | None = pydantic.Field(default=None, description="The evidence, summarized.")
    decided_at_sample: int | None = pydantic.Field(
        default=None, description="Pairs consumed when the test decided (less than the dataset when early)."
    )
    started_at: datetime.datetime | None = pydantic.Field(default=None, description="When the Job started.")
    completed_at: datetime.datetime | None = pydantic.Field(default=None, description="When the verdict was set.")
    invalid_lines: list[int] = pydantic.Field(
        default_factory=list,
        max_length=100,
        description="Line numbers of malformed dataset lines (first 100).",
    )


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress.display"},
    {"name": "Estimate", "type": "number", "format": "float", "jsonPath": ".status.statistics.estimate"},
    {"name": "Lower", "type": "number", "format": "float", "jsonPath": ".status.statistics.lowerBound"},
    {"name": "Upper", "type": "number", "format": "float", "jsonPath": ".status.statistics.upperBound"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

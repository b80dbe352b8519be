"""The evaluation settings a RoutePolicy hands to each QualificationRun: what to call, on what data, how
to judge and how to decide."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import pydantic

from assay.api import common
from assay.api.common import ApiModel


class Endpoint(ApiModel):
    """An OpenAI-compatible endpoint (usually the gateway itself) that evaluation traffic goes through."""

    url: str = pydantic.Field(
        description="Base URL of the OpenAI-compatible API, e.g. http://litellm.llm.svc:4000/v1. "
        "Requests go to <url>/chat/completions.",
        min_length=1,
        max_length=2048,
        json_schema_extra=common.validations(common.URL_RULES),
    )
    api_key_secret_ref: common.SecretKeyRef | None = pydantic.Field(
        default=None, description="Secret key holding the API key, sent as a bearer token. Omit for none."
    )


class ModelRoute(ApiModel):
    """A model as the endpoint knows it, with the prompt it runs under."""

    model: str = pydantic.Field(
        description="Model name the endpoint serves (a LiteLLM model group).",
        min_length=1,
        max_length=253,
        json_schema_extra=common.validations(common.MODEL_NAME_RULES),
    )
    system_prompt: str | None = pydantic.Field(
        default=None,
        max_length=65536,
        description="System prompt this model runs under: merged in front of the conversation's first system "
        "message, or sent as one (as LiteLLM's litellm_system_prompt does). A promotion serves it on the "
        "candidate's arm (gateway kind LiteLLMConfigMap; refused elsewhere and on a RoutePolicy's baseline). "
        "Omit to send the recorded messages as is.",
    )
    backend: str | None = pydantic.Field(
        default=None,
        max_length=253,
        description="For weight-based gateways (EnvoyAIGatewayRoute, HTTPRoute): the backendRef name that "
        "serves this model in the route. Defaults to the model name.",
        json_schema_extra=common.validations(
            [
                common.cel(
                    f"self.matches(r'{common.DNS_NAME_PATTERN}')",
                    "must be a backendRef name: lowercase letters, digits, '-' and '.', starting and ending with "
                    "a letter or digit",
                )
            ]
        ),
    )


class Candidate(ModelRoute):
    """A cheaper route to qualify against the baseline."""

    name: str = pydantic.Field(
        description="Short unique name of the candidate (used in QualificationRun names).",
        max_length=40,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )


class Dataset(ApiModel):
    """Recorded traffic in JSON Lines: one record a line with id, messages (OpenAI chat format) and optionally
    baseline_response, reference and metadata. Exactly one source must be set."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "[has(self.configMapRef), has(self.url), has(self.path)].filter(x, x).size() == 1",
                    "exactly one of configMapRef, url or path must be set",
                    reason="FieldValueInvalid",
                )
            ]
        }
    )

    config_map_ref: common.ConfigMapKeyRef | None = pydantic.Field(
        default=None, description="A ConfigMap key holding the JSON Lines."
    )
    url: str | None = pydantic.Field(
        default=None,
        max_length=2048,
        description="An HTTP(S) URL serving the JSON Lines. It may be presigned: status, Events and logs show "
        "only its scheme and host.",
        json_schema_extra=common.validations(common.URL_RULES),
    )
    path: str | None = pydantic.Field(
        default=None,
        max_length=4096,
        description="An absolute path to a file on a volume mounted into the evaluation Job.",
        json_schema_extra=common.validations(
            [
                common.cel(
                    "self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)') && !self.matches('[[:cntrl:]]')",
                    "must be an absolute path (starting with '/') without '..' segments or control characters",
                )
            ]
        ),
    )
    on_invalid_line: Literal["Skip", "Fail"] = pydantic.Field(
        default="Skip",
        description="Skip: report malformed lines (with line numbers) and go on. Fail: fail the run.",
    )


class Judge(ApiModel):
    """The blind pairwise judge: never told which model wrote which answer; asked in both orders."""

    model: str = pydantic.Field(
        description="Judge model. It must differ from the baseline and from every candidate.",
        min_length=1,
        max_length=253,
        json_schema_extra=common.validations(common.MODEL_NAME_RULES),
    )
    endpoint: Endpoint | None = pydantic.Field(
        default=None, description="Endpoint for judge calls. Defaults to the evaluation endpoint."
    )
    rubric: str | None = pydantic.Field(
        default=None, max_length=16384, description="What makes an answer better. Defaults to assay's rubric."
    )
    family: str | None = pydantic.Field(
        default=None,
        max_length=63,
        description="Model family of the judge (e.g. openai, anthropic). When set, a candidate of the same "
        "family is refused: a judge must not grade its own family.",
    )


class OutputFormat(ApiModel):
    """A format every answer must meet; both sides are checked and their pass rates compared."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.type != 'Regex' || has(self.pattern)",
                    "pattern is required when type is Regex",
                    field_path=".pattern",
                ),
                common.cel(
                    "self.type != 'JSONSchema' || has(self.jsonSchema)",
                    "jsonSchema is required when type is JSONSchema",
                    field_path=".jsonSchema",
                ),
            ]
        }
    )

    type: Literal["None", "JSON", "JSONSchema", "Regex"] = pydantic.Field(
        default="None", description="None, JSON (any valid JSON), JSONSchema, or Regex (full match)."
    )
    json_schema: str | None = pydantic.Field(
        default=None, max_length=65536, description="A JSON Schema, as a JSON string, for type JSONSchema."
    )
    pattern: str | None = pydantic.Field(default=None, max_length=4096, description="A regex, for type Regex.")

    # Admission cannot compile a Python regex or parse JSON: the operator refuses these at once (InvalidSpec).
    @pydantic.field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value, what="a valid Python regular expression")
        return value

    @pydantic.field_validator("json_schema")
    @classmethod
    def _schema_is_a_json_object(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            schema = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at character {exc.pos}") from None
        if not isinstance(schema, dict):
            raise ValueError("must be a JSON object (a JSON Schema), written as a JSON string")
        _check_schema_patterns(schema)
        return value


def _compile(pattern: str, *, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not {what}: {exc}") from None


def _check_schema_patterns(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            _compile(node["pattern"], what="a valid regular expression (a 'pattern' in the schema)")
        for child in node.values():
            _check_schema_patterns(child)
    elif isinstance(node, list):
        for child in node:
            _check_schema_patterns(child)


class TestSettings(ApiModel):
    """The sequential non-inferiority test and its guardrails."""

    __test__ = False  # not a pytest test class, despite the name

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                common.cel(
                    "self.maxSamples >= self.minSamples",
                    "maxSamples must be at least minSamples",
                    field_path=".maxSamples",
                ),
                common.cel(
                    "self.minControls == 0 || self.controlShare > 0",
                    "controlShare must be above 0 when minControls is above 0: no sensitivity control would be "
                    "drawn, so the control guardrail could never pass",
                    field_path=".controlShare",
                ),
            ]
        }
    )

    margin: float = pydantic.Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Non-inferiority margin on the win-rate scale: the candidate passes when its mean score "
        "is shown to exceed 0.5 - margin.",
    )
    alpha: float = pydantic.Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="One-sided false promotion rate, divided by the number of candidates on the same data.",
    )
    min_samples: int = pydantic.Field(default=50, ge=1, le=1_000_000, description="Fewest pairs before a pass.")
    max_samples: int = pydantic.Field(
        default=1200,
        ge=1,
        le=1_000_000,
        description="Most pairs: the run is Inconclusive if still undecided.",
    )
    control_share: float = pydantic.Field(
        default=0.08,
        ge=0,
        le=0.5,
        description="Share of pairs that are sensitivity controls (baseline against a degraded copy of itself).",
    )
    min_controls: int = pydantic.Field(
        default=10, ge=0, le=100_000, description="Fewest controls before the control catch rate counts."
    )
    swap_consistency_min: float = pydantic.Field(
        default=0.75, ge=0, le=1, description="Least share of judged pairs whose two orders agree."
    )
    control_catch_min: float = pydantic.Field(
        default=0.90, ge=0, le=1, description="Least share of controls the judge must catch."
    )
    length_ratio_max: float = pydantic.Field(
        default=1.1,
        ge=1,
        le=100,
        description="Above this candidate/baseline length ratio, a length-controlled estimate must also pass.",
    )
    format_tolerance: float = pydantic.Field(
        default=0.02,
        ge=0,
        le=1,
        description="How far the candidate's format pass rate may fall below the baseline's.",
    )
    seed: int = pydantic.Field(
        default=20240601, ge=0, le=2**53, description="Seed of the pre-registered evaluation order."
    )


class Execution(ApiModel):
    """How the evaluation Job runs."""

    parallelism: int = pydantic.Field(
        default=1, ge=1, le=64, description="Pods evaluating shards at once (an Indexed Job when above 1)."
    )
    concurrency: int = pydantic.Field(default=8, ge=1, le=1024, description="Concurrent HTTP calls per pod.")
    request_timeout_seconds: float = pydantic.Field(
        default=60, gt=0, le=3600, description="Timeout of one model or judge call."
    )
    max_attempts: int = pydantic.Field(
        default=5,
        ge=1,
        le=20,
        description="Attempts per call (429, 5xx and timeouts are retried with backoff).",
    )
    active_deadline_seconds: int = pydantic.Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="The Job's activeDeadlineSeconds."
    )
    backoff_limit: int = pydantic.Field(default=3, ge=0, le=100, description="The Job's backoffLimit.")
    image: str | None = pydantic.Field(
        default=None, max_length=1024, description="Evaluator image. Defaults to the operator's own image."
    )
    chunk_size: int = pydantic.Field(
        default=25, ge=1, le=1000, description="Evidence records per ConfigMap chunk written by a pod."
    )


class ModelPrice(ApiModel):
    """Token prices of one model, in US dollars per million tokens."""

    model: str = pydantic.Field(
        description="Model name as in baseline/candidates.",
        min_length=1,
        max_length=253,
        json_schema_extra=common.validations(common.MODEL_NAME_RULES),
    )
    input_per_million: float = pydantic.Field(ge=0, le=1_000_000, description="Price per million input tokens.")
    output_per_million: float = pydantic.Field(ge=0, le=1_000_000, description="Price per million output tokens.")

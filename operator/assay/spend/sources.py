"""Spend sources: the PromQL that reads a gateway's spend and requests over a window, per route, feature or tenant.

One class per gateway kind behind one small Protocol, as the gateway adapters are (assay.gateways):

- `LiteLLMSource`: LiteLLM's own USD counter, `litellm_spend_metric_total`, and its request counter
  `litellm_proxy_total_requests_metric_total`, by `requested_model` (the route alias the application called).
  Feature and tenant are request metadata that LiteLLM turns into labels when its config lists them in
  `litellm_settings.custom_prometheus_metadata_labels` (`metadata.feature` becomes the label `metadata_feature`).
- `EnvoyAIGatewaySource`: Envoy AI Gateway exports tokens, not dollars: its token-usage metric by request model,
  response model and token type, multiplied here by the price table (assay.qualification.cost). Both metric
  shapes are read: `gen_ai_client_token_usage` (a histogram, `gen_ai_token_type` input/output) and the newer
  OpenTelemetry GenAI names `gen_ai_client_inference_usage_{input,output}_tokens`.
- `PromQLSource`: a user's own PromQL answering USD, with `$window` and `$by` in its text.

Windows are Prometheus durations (`1d`, `7d`, `30d`) read with `increase(...[window])`, which survives counter
resets (a gateway restart). Pure: nothing here talks to Prometheus.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from assay.qualification import cost
from assay.spend import prometheus

DIMENSIONS = ("route", "feature", "tenant")

# The gateway kinds whose spend is LiteLLM's counters (the spend loop and the budget rules read them alike).
LITELLM_KINDS = frozenset({"LiteLLMConfigMap", "LiteLLMAdminAPI"})
LITELLM_SPEND = "litellm_spend_metric_total"
LITELLM_REQUESTS = "litellm_proxy_total_requests_metric_total"
LITELLM_ROUTE_LABEL = "requested_model"
# assay's own calls (the watch's baseline replays and judge calls) carry the request tag `assay-watch`. LiteLLM
# labels its metrics with a tag listed in `litellm_settings.custom_prometheus_tags` as `tag_<tag>` ("true" /
# "false", invalid characters as underscores): with `custom_prometheus_tags: ["assay-watch"]` they are left out.
ASSAY_CALL_TAG = "assay-watch"
EXCLUDE_ASSAY_CALLS: Mapping[str, str] = {"tag_assay_watch": "true"}

ENVOY_TOKENS_SUM = "gen_ai_client_token_usage_sum"
ENVOY_TOKENS_COUNT = "gen_ai_client_token_usage_count"
ENVOY_TOKEN_TYPE = "gen_ai_token_type"
# The OpenTelemetry GenAI conventions after v1.41 (counters, or histograms when exported as such).
ENVOY_OTEL_TOKENS = {
    "input": "gen_ai_client_inference_usage_input_tokens",
    "output": "gen_ai_client_inference_usage_output_tokens",
}
ENVOY_ROUTE_LABEL = "gen_ai_request_model"
ENVOY_MODEL_LABEL = "gen_ai_response_model"


class UnpricedModel(prometheus.PrometheusError):
    """Tokens were counted for a model the price table does not hold: add it to spec.pricing."""


@dataclasses.dataclass(frozen=True)
class SpendQuery:
    """One PromQL query of a source: its answer's `group_label` names the group (route, feature or tenant);
    `usd(sample)` turns a sample into US dollars (None: the value already is dollars)."""

    expr: str
    group_label: str
    usd: Callable[[prometheus.Sample], float] | None = None


class SpendSource(Protocol):
    """Where one gateway kind's spend and requests come from."""

    def labels(self) -> Mapping[str, str]:
        """The label naming each dimension this source can group by (route always; feature and tenant when set)."""
        ...

    def spend_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        """Queries whose dollars, summed per group, are the spend over `window`."""
        ...

    def request_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        """Queries whose values, summed per group, are the requests over `window` (empty: not known)."""
        ...


def litellm_metadata_label(entry: str) -> str:
    """The Prometheus label LiteLLM 1.108 makes of a `custom_prometheus_metadata_labels` entry:
    `metadata.feature` -> `metadata_feature` (dots and other invalid characters become underscores)."""
    label = re.sub(r"[^a-zA-Z0-9_]", "_", entry)
    return label if re.match(r"[a-zA-Z_]", label) else "_" + label


def selector(matchers: Mapping[str, str], *, exclude: Mapping[str, str] | None = None) -> str:
    """`{a="x",b!="y"}` for exact label matchers and `exclude`d values (quotes and backslashes escaped); '' for
    none. A series without an excluded label matches (`b!="y"` holds for an absent `b`)."""
    parts = [f'{name}="{_escape(value)}"' for name, value in sorted(matchers.items())]
    parts += [f'{name}!="{_escape(value)}"' for name, value in sorted((exclude or {}).items())]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _group_label(labels: Mapping[str, str], by: str) -> str:
    if by not in labels:
        known = ", ".join(labels)
        raise ValueError(f"cannot group spend by {by!r} with this source: it knows {known}")
    return labels[by]


@dataclasses.dataclass(frozen=True)
class LiteLLMSource:
    """LiteLLM's spend counter (USD, as LiteLLM prices each response) and request counter.

    `metadata_labels` maps `feature` / `tenant` to the entry in LiteLLM's `custom_prometheus_metadata_labels`
    (e.g. `{"feature": "metadata.feature"}`); `matchers` narrows every query (e.g. `{"namespace": "shop"}`);
    `exclude` leaves out series with these label values (e.g. `EXCLUDE_ASSAY_CALLS`)."""

    metadata_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    matchers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    exclude: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def labels(self) -> Mapping[str, str]:
        extra = {dim: litellm_metadata_label(entry) for dim, entry in self.metadata_labels.items()}
        return {"route": LITELLM_ROUTE_LABEL, **extra}

    def _query(self, metric: str, window: str, by: str) -> SpendQuery:
        label = _group_label(self.labels(), by)
        sel = selector(self.matchers, exclude=self.exclude)
        expr = f"sum by ({label}) (increase({metric}{sel}[{prometheus.check_duration(window)}]))"
        return SpendQuery(expr, label)

    def spend_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        return [self._query(LITELLM_SPEND, window, by)]

    def request_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        return [self._query(LITELLM_REQUESTS, window, by)]


@dataclasses.dataclass(frozen=True)
class EnvoyAIGatewaySource:
    """Envoy AI Gateway's token usage times `prices` (per response model; the route is the request model).

    A model with tokens but no price raises UnpricedModel when its answer is read: never counted as free."""

    prices: Mapping[str, cost.Price]
    matchers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extra_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def labels(self) -> Mapping[str, str]:
        return {"route": ENVOY_ROUTE_LABEL, **self.extra_labels}

    def _usd(self, direction: str | None) -> Callable[[prometheus.Sample], float]:
        def usd(sample: prometheus.Sample) -> float:
            model = sample.labels.get(ENVOY_MODEL_LABEL, "")
            price = self.prices.get(model) or self.prices.get(model.rsplit("/", 1)[-1])
            if price is None:
                raise UnpricedModel(f"Envoy AI Gateway counted tokens for model {model!r}, which has no price: add it")
            kind = direction or sample.labels.get(ENVOY_TOKEN_TYPE, "")
            if kind == "input":
                return sample.value * price.input_per_million / 1e6
            if kind == "output":
                return sample.value * price.output_per_million / 1e6
            return 0.0  # other token types (cached, reasoning) are parts of input/output, not added twice

        return usd

    def spend_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        label = _group_label(self.labels(), by)
        w, sel = prometheus.check_duration(window), selector(self.matchers)
        group = f"{label}, {ENVOY_MODEL_LABEL}"
        queries = [
            SpendQuery(
                f"sum by ({group}, {ENVOY_TOKEN_TYPE}) (increase({ENVOY_TOKENS_SUM}{sel}[{w}]))", label, self._usd(None)
            )
        ]
        for direction, name in ENVOY_OTEL_TOKENS.items():
            named = _name_matcher(name, sel)
            queries.append(SpendQuery(f"sum by ({group}) (increase({named}[{w}]))", label, self._usd(direction)))
        return queries

    def request_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        label = _group_label(self.labels(), by)
        w, sel = prometheus.check_duration(window), selector({**self.matchers, ENVOY_TOKEN_TYPE: "input"})
        otel = ENVOY_OTEL_TOKENS["input"] + "_count" + selector(self.matchers)
        return [
            SpendQuery(f"sum by ({label}) (increase({ENVOY_TOKENS_COUNT}{sel}[{w}]))", label),
            SpendQuery(f"sum by ({label}) (increase({otel}[{w}]))", label),
        ]


def _name_matcher(name: str, sel: str) -> str:
    """A selector for `name` as a counter (`_total`), a histogram's `_sum`, or bare, with `sel`'s matchers."""
    inner = sel[1:-1] if sel else ""
    matchers = [f'__name__=~"{re.escape(name)}(_total|_sum)?"'] + ([inner] if inner else [])
    return "{" + ",".join(matchers) + "}"


@dataclasses.dataclass(frozen=True)
class PromQLSource:
    """A user's PromQL answering US dollars: `$window` becomes the window and `$by` the grouping label.

    e.g. `sum by ($by) (increase(agentgateway_gen_ai_client_cost_usd_total[$window]))`."""

    spend: str
    requests: str | None = None
    group_labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"route": "route"})

    def __post_init__(self) -> None:
        for name, text in (("spend", self.spend), ("requests", self.requests)):
            if text is not None and "$window" not in text:
                raise ValueError(f"the {name} PromQL must contain $window (e.g. increase(metric[$window]))")

    def labels(self) -> Mapping[str, str]:
        return dict(self.group_labels)

    def _fill(self, text: str, window: str, by: str) -> SpendQuery:
        label = _group_label(self.labels(), by)
        expr = text.replace("$window", prometheus.check_duration(window)).replace("$by", label)
        return SpendQuery(expr, label)

    def spend_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        return [self._fill(self.spend, window, by)]

    def request_queries(self, window: str, *, by: str = "route") -> list[SpendQuery]:
        return [] if self.requests is None else [self._fill(self.requests, window, by)]


def totals(answers: Sequence[tuple[SpendQuery, Sequence[prometheus.Sample]]]) -> dict[str, float]:
    """Each group's sum over the answers of a source's queries, converted by each query's `usd`."""
    result: dict[str, float] = {}
    for query, samples in answers:
        for sample in samples:
            group = sample.labels.get(query.group_label, "")
            value = sample.value if query.usd is None else query.usd(sample)
            result[group] = result.get(group, 0.0) + value
    return result

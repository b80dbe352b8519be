"""The PromQL each spend source sends, and how its answers become dollars per route, feature or tenant."""

from __future__ import annotations

import pytest

from assay.qualification import cost
from assay.spend import prometheus, sources

Sample = prometheus.Sample


def test_litellm_spend_is_its_usd_counter_by_route_alias():
    source = sources.LiteLLMSource()
    (query,) = source.spend_queries("7d")
    assert query.expr == "sum by (requested_model) (increase(litellm_spend_metric_total[7d]))"
    assert query.usd is None, "LiteLLM's counter already is US dollars"
    (requests,) = source.request_queries("1d")
    assert requests.expr == "sum by (requested_model) (increase(litellm_proxy_total_requests_metric_total[1d]))"


def test_litellm_feature_and_tenant_are_its_custom_metadata_labels():
    source = sources.LiteLLMSource(
        metadata_labels={"feature": "metadata.feature", "tenant": "metadata.tenant-id"}, matchers={"namespace": "shop"}
    )
    labels = {"route": "requested_model", "feature": "metadata_feature", "tenant": "metadata_tenant_id"}
    assert source.labels() == labels
    (query,) = source.spend_queries("30d", by="feature")
    assert query.expr == 'sum by (metadata_feature) (increase(litellm_spend_metric_total{namespace="shop"}[30d]))'


def test_grouping_by_a_dimension_the_source_lacks_says_what_it_knows():
    with pytest.raises(ValueError, match=r"cannot group spend by 'tenant'.*route"):
        sources.LiteLLMSource().spend_queries("1d", by="tenant")


def test_label_values_are_escaped_in_selectors():
    assert sources.selector({"team": 'a"b\\c'}) == '{team="a\\"b\\\\c"}'


def test_envoy_tokens_are_priced_per_response_model_and_token_type_in_both_metric_shapes():
    prices = {"gpt-4o": cost.Price(2.5, 10.0), "gpt-4o-mini": cost.Price(0.15, 0.6)}
    source = sources.EnvoyAIGatewaySource(prices=prices)
    old, otel_in, otel_out = source.spend_queries("1d")
    assert old.expr == (
        "sum by (gen_ai_request_model, gen_ai_response_model, gen_ai_token_type)"
        " (increase(gen_ai_client_token_usage_sum[1d]))"
    )
    assert 'gen_ai_client_inference_usage_input_tokens(_total|_sum)?"' in otel_in.expr
    assert "output_tokens" in otel_out.expr
    route = {"gen_ai_request_model": "support"}
    answers = [
        (old, [Sample({**route, "gen_ai_response_model": "gpt-4o", "gen_ai_token_type": "input"}, 1_000_000)]),
        (old, [Sample({**route, "gen_ai_response_model": "gpt-4o", "gen_ai_token_type": "output"}, 100_000)]),
        (otel_in, [Sample({**route, "gen_ai_response_model": "openai/gpt-4o-mini"}, 2_000_000)]),
        (otel_out, [Sample({"gen_ai_request_model": "faq", "gen_ai_response_model": "gpt-4o-mini"}, 1_000_000)]),
    ]
    assert sources.totals(answers) == pytest.approx({"support": 2.5 + 1.0 + 0.30, "faq": 0.6})


def test_envoy_tokens_of_an_unpriced_model_are_an_error_not_free():
    (old, *_) = sources.EnvoyAIGatewaySource(prices={}).spend_queries("1d")
    sample = Sample({"gen_ai_response_model": "mystery", "gen_ai_token_type": "input"}, 10)
    with pytest.raises(sources.UnpricedModel, match="mystery"):
        sources.totals([(old, [sample])])


def test_a_users_promql_gets_the_window_and_grouping_label():
    source = sources.PromQLSource(spend="sum by ($by) (increase(agentgateway_gen_ai_client_cost_usd_total[$window]))")
    (query,) = source.spend_queries("30d")
    assert query.expr == "sum by (route) (increase(agentgateway_gen_ai_client_cost_usd_total[30d]))"
    assert source.request_queries("30d") == []
    with pytest.raises(ValueError, match=r"must contain \$window"):
        sources.PromQLSource(spend="sum(cost_total)")


def test_a_window_that_is_not_a_duration_never_reaches_promql():
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        sources.LiteLLMSource().spend_queries("7d]) or vector(0")

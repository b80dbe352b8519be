"""Rewriting LiteLLM's config.yaml: only the owned alias entry changes, byte for byte everywhere else."""

from __future__ import annotations

import pytest
import yaml

from assay.gateways import interface, litellm_config

CONFIG = """\
# LiteLLM proxy config, maintained by the platform team
model_list:
  - model_name: gpt-big      # the expensive baseline
    litellm_params: {model: openai/gpt-big, api_base: "http://sim/v1"}
  - model_name: gpt-small
    litellm_params:
      model: openai/gpt-small
      api_key: os.environ/OPENAI_API_KEY

router_settings:
  num_retries: 2   # keep retries low
  model_group_alias:
    support-summary: gpt-big   # apps call this
    other-route: "gpt-small"
litellm_settings:
  telemetry: false
"""


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


def test_switch_changes_only_the_alias_value_and_keeps_comments():
    after = litellm_config.set_alias(CONFIG, "support-summary", "gpt-small")
    assert changed_lines(CONFIG, after) == [
        ("    support-summary: gpt-big   # apps call this", "    support-summary: gpt-small   # apps call this")
    ]


def test_both_model_groups_stay_defined_after_a_switch():
    after = litellm_config.set_alias(CONFIG, "support-summary", "gpt-small")
    assert litellm_config.model_groups(after) == ["gpt-big", "gpt-small"]
    assert yaml.safe_load(after)["model_list"] == yaml.safe_load(CONFIG)["model_list"]


def test_switch_refuses_a_model_group_missing_from_model_list():
    with pytest.raises(interface.ModelGroupNotFound) as raised:
        litellm_config.set_alias(CONFIG, "support-summary", "gpt-tiny")
    assert raised.value.reason == "ModelGroupNotFound"
    assert "'gpt-tiny'" in str(raised.value) and "gpt-big, gpt-small" in str(raised.value)


def test_alias_to_another_alias_is_refused_because_aliases_are_not_model_groups():
    with pytest.raises(interface.ModelGroupNotFound):
        litellm_config.set_alias(CONFIG, "support-summary", "other-route")


def test_new_alias_is_added_as_one_line_in_the_existing_block():
    after = litellm_config.set_alias(CONFIG, "billing", "gpt-small")
    assert after == CONFIG.replace(
        '    other-route: "gpt-small"\n', '    other-route: "gpt-small"\n    billing: gpt-small\n'
    )


def test_removing_an_alias_deletes_only_its_line():
    after = litellm_config.put_alias(CONFIG, "support-summary", None)
    assert after == CONFIG.replace("    support-summary: gpt-big   # apps call this\n", "")


@pytest.mark.parametrize(
    "route, target",
    [("support-summary", "gpt-small"), ("other-route", "gpt-big"), ("new-route", "gpt-big")],
)
def test_restoring_the_read_entry_round_trips_byte_for_byte(route, target):
    before = litellm_config.read_alias(CONFIG, route)
    switched = litellm_config.set_alias(CONFIG, route, target)
    assert switched != CONFIG
    assert litellm_config.put_alias(switched, route, before) == CONFIG


def test_mapping_form_keeps_its_other_fields():
    config = CONFIG.replace(
        "support-summary: gpt-big   # apps call this", "support-summary:\n      model: gpt-big\n      hidden: true"
    )
    after = litellm_config.set_alias(config, "support-summary", "gpt-small")
    assert litellm_config.read_alias(after, "support-summary") == {"model": "gpt-small", "hidden": True}
    assert changed_lines(config, after) == [("      model: gpt-big", "      model: gpt-small")]


def test_writing_the_current_value_returns_the_text_unchanged():
    assert litellm_config.set_alias(CONFIG, "support-summary", "gpt-big") is CONFIG


@pytest.mark.parametrize(
    "config",
    [
        "model_list: [{model_name: a}, {model_name: b}]\n",
        "model_list: [{model_name: a}, {model_name: b}]\nrouter_settings:\n",
        "model_list: [{model_name: a}, {model_name: b}]\nrouter_settings:\n  model_group_alias:\n",
        "model_list: [{model_name: a}, {model_name: b}]\nrouter_settings:\n  model_group_alias: {}\n",
        "model_list: [{model_name: a}, {model_name: b}]\nrouter_settings: {num_retries: 1}",
        "model_list: [{model_name: a}, {model_name: b}]\nrouter_settings: {model_group_alias: {r: a, s: a}}\n",
        "model_list:\n- model_name: a\n- model_name: b\nrouter_settings:\n  model_group_alias:\n    r: a\n",
    ],
)
def test_any_layout_ends_with_exactly_the_intended_data(config):
    after = litellm_config.set_alias(config, "r", "b")
    intended = yaml.safe_load(config) or {}
    router_settings = intended.get("router_settings") or {}
    intended["router_settings"] = {
        **router_settings,
        "model_group_alias": {**(router_settings.get("model_group_alias") or {}), "r": "b"},
    }
    assert yaml.safe_load(after) == intended
    assert after.startswith("model_list")  # edited in place, not re-serialized


def test_route_names_that_need_quoting_are_quoted():
    after = litellm_config.set_alias(CONFIG, "team: support #1", "gpt-small")
    assert litellm_config.read_alias(after, "team: support #1") == "gpt-small"
    assert litellm_config.read_alias(after, "support-summary") == "gpt-big"


def test_invalid_yaml_is_reported_with_its_line():
    with pytest.raises(interface.InvalidGatewayConfig, match="line 3"):
        litellm_config.read_alias("model_list:\n  - model_name: a\n  bad: [\n", "r")


def test_alias_entry_of_the_wrong_shape_is_reported_with_its_field():
    config = "model_list: [{model_name: a}]\nrouter_settings:\n  model_group_alias:\n    r: [a, b]\n"
    with pytest.raises(interface.InvalidGatewayConfig, match=r"router_settings\.model_group_alias\.r"):
        litellm_config.read_alias(config, "r")

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


PROMPT = "Answer in two sentences.\nCite the policy: 'refunds in 30 days'."


def test_a_prompt_arm_is_a_copy_of_the_group_with_the_prompt_and_the_alias_points_at_it():
    after = litellm_config.set_alias(CONFIG, "support-summary", "gpt-small", system_prompt=PROMPT)
    arm = litellm_config.arm_name("gpt-small", PROMPT)
    assert arm == "gpt-small+prompt-" + interface.prompt_digest(PROMPT).removeprefix("sha256:")
    data = yaml.safe_load(after)
    assert data["router_settings"]["model_group_alias"]["support-summary"] == arm
    before = yaml.safe_load(CONFIG)["model_list"]
    assert data["model_list"][:2] == before  # the plain groups are untouched
    assert data["model_list"][2:] == [
        {"model_name": arm, "litellm_params": {**before[1]["litellm_params"], "litellm_system_prompt": PROMPT}}
    ]
    # Everything else byte for byte: the old text is a prefix-and-suffix of the new one around the added line.
    assert "# the expensive baseline" in after and "# keep retries low" in after
    added = [line for line in after.splitlines() if line not in CONFIG.splitlines()]
    assert len(added) == 2 and added[0].startswith(f"  - {{model_name: {arm}")


def test_switching_to_the_same_prompt_again_adds_nothing_and_back_to_the_plain_group_keeps_the_arm():
    once = litellm_config.set_alias(CONFIG, "support-summary", "gpt-small", system_prompt=PROMPT)
    assert litellm_config.set_alias(once, "support-summary", "gpt-small", system_prompt=PROMPT) == once
    back = litellm_config.set_alias(once, "support-summary", "gpt-big")
    assert yaml.safe_load(back)["router_settings"]["model_group_alias"]["support-summary"] == "gpt-big"
    assert litellm_config.arm_name("gpt-small", PROMPT) in litellm_config.model_groups(back)
    other = litellm_config.set_alias(back, "support-summary", "gpt-small", system_prompt="Be brief.")
    assert len(yaml.safe_load(other)["model_list"]) == 4  # a new prompt is a new arm


def test_an_arm_edited_by_hand_is_refused_not_overwritten():
    once = litellm_config.set_alias(CONFIG, "support-summary", "gpt-small", system_prompt=PROMPT)
    edited = once.replace("Answer in two sentences.", "Answer in ten sentences.")
    with pytest.raises(interface.InvalidGatewayConfig, match="litellm_system_prompt is not the prompt"):
        litellm_config.set_alias(edited, "support-summary", "gpt-small", system_prompt=PROMPT)


def test_an_arm_of_a_missing_group_is_refused_and_deployment_ids_are_not_copied():
    with pytest.raises(interface.ModelGroupNotFound, match="'gpt-tiny'"):
        litellm_config.set_alias(CONFIG, "support-summary", "gpt-tiny", system_prompt=PROMPT)
    flow = "model_list: [{model_name: m, litellm_params: {model: openai/m}, model_info: {id: d1, mode: chat}}]\n"
    after = litellm_config.set_alias(flow, "r", "m", system_prompt=PROMPT)  # flow style: re-serialized
    arm = yaml.safe_load(after)["model_list"][1]
    assert arm["model_info"] == {"mode": "chat"} and arm["litellm_params"]["litellm_system_prompt"] == PROMPT


def test_a_target_with_a_prompt_is_refused_where_the_adapter_cannot_add_an_arm():
    target = interface.RouteTarget.to_model("gpt-small", system_prompt=PROMPT)
    with pytest.raises(interface.PromptNotServable):
        litellm_config.target_model_group(target, gateway="LiteLLMAdminAPI")
    assert litellm_config.target_model_group(target, gateway="LiteLLMConfigMap", applies_prompt=True) == "gpt-small"
    with pytest.raises(ValueError, match="system_prompt"):
        interface.RouteTarget(weights={"a": 100}, system_prompt=PROMPT)
    assert "sha256:" in target.describe() and "Answer" not in target.describe()

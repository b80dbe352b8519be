"""Pure rewriting of LiteLLM's config.yaml: the one `router_settings.model_group_alias` entry a policy owns.

Applications call `model: <route>`; LiteLLM resolves the alias to a model group defined in `model_list`.
Switching a route rewrites that single entry. The rest of the file is kept byte for byte (comments, order,
quoting) by editing only the text span of the nodes involved; every edit is verified by parsing the result
and comparing it with the intended data, and in the rare shapes the span edit cannot handle (anchors,
unusual layouts) the file is re-serialized instead, which keeps the data exactly but drops comments.

An alias entry is either a model group name or LiteLLM's mapping form `{model: <group>, hidden: <bool>}`;
both are read, and a switch keeps the form it finds.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import yaml

from assay.gateways import interface

AliasEntry = str | dict[str, Any]

ROUTER_SETTINGS = "router_settings"
MODEL_GROUP_ALIAS = "model_group_alias"
ALIAS_FIELD = f"{ROUTER_SETTINGS}.{MODEL_GROUP_ALIAS}"

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./@+-]*$")


class _SpanEditUnsupported(Exception):
    """The text layout is one the span edit does not handle; the caller re-serializes instead."""


def parse(text: str) -> dict[str, Any]:
    """The config as data; raises InvalidGatewayConfig naming the line of a YAML error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise interface.InvalidGatewayConfig(f"LiteLLM config is not valid YAML{where}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise interface.InvalidGatewayConfig(f"LiteLLM config must be a mapping at the top, not {type(data).__name__}")
    return data


def model_groups(text: str) -> list[str]:
    """The model groups `model_list` defines (each entry's `model_name`), in file order, without repeats."""
    model_list = parse(text).get("model_list") or []
    if not isinstance(model_list, list):
        raise interface.InvalidGatewayConfig("LiteLLM config: model_list must be a list")
    groups: list[str] = []
    for item in model_list:
        name = item.get("model_name") if isinstance(item, dict) else None
        if isinstance(name, str) and name not in groups:
            groups.append(name)
    return groups


def _alias_map(data: dict[str, Any]) -> dict[str, Any]:
    router_settings = data.get(ROUTER_SETTINGS)
    if router_settings is None:
        return {}
    if not isinstance(router_settings, dict):
        raise interface.InvalidGatewayConfig(f"LiteLLM config: {ROUTER_SETTINGS} must be a mapping")
    aliases = router_settings.get(MODEL_GROUP_ALIAS)
    if aliases is None:
        return {}
    if not isinstance(aliases, dict):
        raise interface.InvalidGatewayConfig(f"LiteLLM config: {ALIAS_FIELD} must be a mapping of alias to group")
    return aliases


def check_entry(route: str, entry: object) -> AliasEntry:
    """`entry` if it is a valid alias entry (a group name, or a mapping with a string `model`)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("model"), str):
        return entry
    raise interface.InvalidGatewayConfig(
        f"LiteLLM config: {ALIAS_FIELD}.{route} must be a model group name or a mapping with 'model', not {entry!r}"
    )


def read_alias(text: str, route: str) -> AliasEntry | None:
    """The alias entry of `route`, or None when the route has no alias."""
    entry = _alias_map(parse(text)).get(route)
    return None if entry is None else check_entry(route, entry)


def alias_model(entry: AliasEntry | None) -> str | None:
    """The model group an alias entry points at."""
    if entry is None:
        return None
    return entry if isinstance(entry, str) else str(entry["model"])


def set_alias(text: str, route: str, model_group: str, *, system_prompt: str | None = None) -> str:
    """`text` with `route` aliased to `model_group`, everything else unchanged; with `system_prompt`, to the
    prompt arm of that group (define_arm), so the route serves the model with the prompt it was qualified with.

    Raises ModelGroupNotFound when `model_group` is not defined in model_list: both the baseline's and the
    candidate's groups must stay defined, so that switching back is always one alias edit away.
    """
    if system_prompt:
        text, model_group = define_arm(text, model_group, system_prompt)
    groups = model_groups(text)
    if model_group not in groups:
        raise interface.ModelGroupNotFound(
            f"LiteLLM config: model group {model_group!r} is not defined in model_list "
            f"(defined: {', '.join(groups) or 'none'}); add a model_list entry with model_name: {model_group}"
        )
    current = read_alias(text, route)
    entry: AliasEntry = {**current, "model": model_group} if isinstance(current, dict) else model_group
    return put_alias(text, route, entry)


def arm_name(model_group: str, system_prompt: str) -> str:
    """The model group that serves `model_group` under `system_prompt`: named by the prompt's content hash, so
    the alias (and status.activeRoute.model) says which prompt serves, and a new prompt makes a new group."""
    return f"{model_group}+prompt-{interface.prompt_digest(system_prompt).removeprefix('sha256:')}"


def define_arm(text: str, model_group: str, system_prompt: str) -> tuple[str, str]:
    """(`text` with the prompt arm of `model_group` defined in model_list, the arm's group name).

    The arm is a copy of every deployment of `model_group` (same litellm_params, model_info without its `id`)
    with `litellm_params.litellm_system_prompt` set: LiteLLM then merges the prompt into the request's first
    system message (`"<prompt>\n\n<app's system message>"`), or sends it as the first message when there is
    none, on this arm only; the plain group is left as it is for everything else. An arm already defined is kept
    when it carries the same prompt; one that was edited by hand is an error, not overwritten. The entries are
    appended to model_list's text (the rest of the file byte for byte) and checked by parsing, else the file is
    re-serialized."""
    name = arm_name(model_group, system_prompt)
    data = parse(text)
    model_list = data.get("model_list") or []
    if not isinstance(model_list, list):
        raise interface.InvalidGatewayConfig("LiteLLM config: model_list must be a list")
    existing = [item for item in model_list if isinstance(item, dict) and item.get("model_name") == name]
    for item in existing:
        params = item.get("litellm_params")
        if not isinstance(params, dict) or params.get("litellm_system_prompt") != system_prompt:
            raise interface.InvalidGatewayConfig(
                f"LiteLLM config: model_list entry {name!r} exists but its litellm_params.litellm_system_prompt is "
                f"not the prompt {interface.prompt_digest(system_prompt)} it is named for; remove the entry"
            )
    if existing:
        return text, name
    sources = [item for item in model_list if isinstance(item, dict) and item.get("model_name") == model_group]
    if not sources:
        raise interface.ModelGroupNotFound(
            f"LiteLLM config: model group {model_group!r} is not defined in model_list "
            f"(defined: {', '.join(model_groups(text)) or 'none'}); add a model_list entry with model_name: "
            f"{model_group}"
        )
    arms = []
    for source in sources:
        arm = copy.deepcopy(source)
        arm["model_name"] = name
        if not isinstance(arm.get("litellm_params"), dict):
            raise interface.InvalidGatewayConfig(
                f"LiteLLM config: model_list entry {model_group!r} has no litellm_params mapping"
            )
        arm["litellm_params"]["litellm_system_prompt"] = system_prompt
        if isinstance(arm.get("model_info"), dict):
            arm["model_info"].pop("id", None)  # deployment ids are unique
        arms.append(arm)
    intended = {**copy.deepcopy(data), "model_list": [*copy.deepcopy(model_list), *arms]}
    try:
        edited: str | None = _append_to_list(text, "model_list", arms)
    except _SpanEditUnsupported:
        edited = None
    if edited is not None and _loads_equal(edited, intended):
        return edited, name
    return yaml.safe_dump(intended, sort_keys=False, allow_unicode=True), name


def put_alias(text: str, route: str, entry: AliasEntry | None) -> str:
    """`text` with the alias entry of `route` set to exactly `entry` (removed when None), everything else
    unchanged. Used to restore a snapshot; does not check model_list."""
    if entry is not None:
        check_entry(route, entry)
    data = parse(text)
    if _alias_map(data).get(route) == entry:
        return text
    intended = copy.deepcopy(data)
    router_settings = intended.get(ROUTER_SETTINGS) or {}
    aliases = dict(router_settings.get(MODEL_GROUP_ALIAS) or {})
    if entry is None:
        aliases.pop(route, None)
    else:
        aliases[route] = copy.deepcopy(entry)
    intended[ROUTER_SETTINGS] = {**router_settings, MODEL_GROUP_ALIAS: aliases}
    try:
        edited: str | None = _span_edit(text, data, route, entry)
    except _SpanEditUnsupported:
        edited = None
    if edited is not None and _loads_equal(edited, intended):
        return edited
    return yaml.safe_dump(intended, sort_keys=False, allow_unicode=True)


def _loads_equal(text: str, intended: dict[str, Any]) -> bool:
    try:
        return bool(yaml.safe_load(text) == intended)
    except yaml.YAMLError:
        return False


# --- span editing -------------------------------------------------------------------------------------------


def _span_edit(text: str, data: dict[str, Any], route: str, entry: AliasEntry | None) -> str:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise _SpanEditUnsupported from exc
    if root is None:
        return (
            text
            + ("" if not text or text.endswith("\n") else "\n")
            + _block(ROUTER_SETTINGS, {MODEL_GROUP_ALIAS: {route: entry}}, 0)
        )
    if not isinstance(root, yaml.MappingNode):
        raise _SpanEditUnsupported
    router_settings = data.get(ROUTER_SETTINGS) or {}
    aliases = router_settings.get(MODEL_GROUP_ALIAS) or {}
    rs_node = _value_of(root, ROUTER_SETTINGS)
    if rs_node is None:
        return _insert(text, root, data, ROUTER_SETTINGS, {MODEL_GROUP_ALIAS: {route: entry}})
    if _is_null(rs_node):
        return _replace(text, rs_node, {MODEL_GROUP_ALIAS: {route: entry}})
    alias_node = _value_of(rs_node, MODEL_GROUP_ALIAS)
    if alias_node is None:
        return _insert(text, rs_node, router_settings, MODEL_GROUP_ALIAS, {route: entry})
    if _is_null(alias_node):
        return _replace(text, alias_node, {route: entry})
    entry_node = _value_of(alias_node, route)
    if entry_node is None:
        assert entry is not None  # put_alias returns early when removing an absent entry
        return _insert(text, alias_node, aliases, route, entry)
    if entry is None:
        return _delete(text, alias_node, route, aliases)
    if isinstance(entry, dict) and isinstance(entry_node, yaml.MappingNode) and not entry_node.flow_style:
        model_node = _value_of(entry_node, "model")
        current = aliases.get(route)
        if model_node is not None and isinstance(current, dict) and {**current, "model": entry["model"]} == entry:
            return _replace(text, model_node, entry["model"])
    return _replace(text, entry_node, entry)


def _append_to_list(text: str, key: str, items: list[Any]) -> str:
    """`text` with `items` appended (one flow-style entry a line) to the top-level block sequence at `key`."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise _SpanEditUnsupported from exc
    if not isinstance(root, yaml.MappingNode):
        raise _SpanEditUnsupported
    node = _value_of(root, key)
    if not isinstance(node, yaml.SequenceNode) or node.flow_style or not node.value:
        raise _SpanEditUnsupported
    first = node.value[0]
    line_start = text.rfind("\n", 0, first.start_mark.index) + 1
    dash = text.rfind("-", line_start, first.start_mark.index)
    if dash == -1 or text[line_start:dash].strip():
        raise _SpanEditUnsupported
    pad = " " * (dash - line_start)
    end = _content_end(node)
    newline = text.find("\n", end)
    lines = "".join(f"{pad}- {_flow(item)}\n" for item in items)
    if newline == -1:
        return text + "\n" + lines
    return text[: newline + 1] + lines + text[newline + 1 :]


def _value_of(mapping: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(mapping, yaml.MappingNode):
        raise _SpanEditUnsupported
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _is_null(node: yaml.Node) -> bool:
    return node.tag == "tag:yaml.org,2002:null"


def _content_end(node: yaml.Node) -> int:
    """Index just past the node's last character of content (block collections end at their last child)."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style and node.value:
        last = node.value[-1]
        return _content_end(last[1] if isinstance(last, tuple) else last)
    return int(node.end_mark.index)


def _scalar(value: object, *, style: str | None = None) -> str:
    """A YAML scalar for `value` in the given quoting style when possible (so a replaced value keeps the look
    of the one it replaces): plain when that reads back identically, else double-quoted (JSON is valid YAML)."""
    if isinstance(value, str) and style == "'":
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, str) and style != '"' and _PLAIN.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _block(key: str, value: object, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict) and value:
        return f"{pad}{_scalar(key)}:\n" + "".join(_block(str(k), v, indent + 2) for k, v in value.items())
    return f"{pad}{_scalar(key)}: {_flow(value)}\n"


def _replace(text: str, node: yaml.Node, value: object) -> str:
    start, end = int(node.start_mark.index), _content_end(node)
    if start == end:  # an empty null (`key:` with nothing after it)
        if start > 0 and text[start - 1] == ":":
            return text[:start] + " " + _flow(value) + text[end:]
        raise _SpanEditUnsupported
    if isinstance(node, yaml.ScalarNode) and isinstance(value, str):
        return text[:start] + _scalar(value, style=node.style) + text[end:]
    return text[:start] + _flow(value) + text[end:]


def _insert(text: str, mapping: yaml.Node, current: dict[str, Any], key: str, value: object) -> str:
    if not isinstance(mapping, yaml.MappingNode):
        raise _SpanEditUnsupported
    if mapping.flow_style or not mapping.value:
        return _replace(text, mapping, {**current, key: value})
    indent = int(mapping.value[0][0].start_mark.column)
    end = _content_end(mapping)
    newline = text.find("\n", end)
    if newline == -1:
        return text + "\n" + _block(key, value, indent)
    return text[: newline + 1] + _block(key, value, indent) + text[newline + 1 :]


def _delete(text: str, mapping: yaml.Node, key: str, current: dict[str, Any]) -> str:
    remaining = {k: v for k, v in current.items() if k != key}
    if not isinstance(mapping, yaml.MappingNode):
        raise _SpanEditUnsupported
    if mapping.flow_style or not remaining:
        return _replace(text, mapping, remaining)
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            line_start = text.rfind("\n", 0, key_node.start_mark.index) + 1
            if text[line_start : key_node.start_mark.index].strip():
                raise _SpanEditUnsupported
            newline = text.find("\n", _content_end(value_node))
            end = len(text) if newline == -1 else newline + 1
            return text[:line_start] + text[end:]
    raise _SpanEditUnsupported


def target_model_group(target: interface.RouteTarget, *, gateway: str, applies_prompt: bool = False) -> str:
    """The model group a LiteLLM route is switched to; LiteLLM cannot split a route by weight. A target with a
    system prompt needs a gateway that defines prompt arms (`applies_prompt`), else PromptNotServable."""
    if target.system_prompt and not applies_prompt:
        raise interface.PromptNotServable(
            f"{gateway}: {target.describe()} needs a model_list entry that applies the prompt, which this adapter "
            "cannot add (LiteLLM without a database takes no model writes); use gateway.kind LiteLLMConfigMap"
        )
    if target.model_group is None:
        raise interface.CanaryNotSupported(
            f"{gateway}: a LiteLLM alias points at one model group, so the route switches all at once; "
            f"{target.describe()} needs a weight-based gateway (EnvoyAIGatewayRoute, HTTPRoute) or "
            "promotion.strategy: Direct"
        )
    return target.model_group

"""Format checks: does an answer meet spec.format (None, JSON, JSONSchema or Regex)?

JSONSchema is checked against a subset of JSON Schema implemented here (no new dependency): type, enum,
const, properties, required, additionalProperties, items, minItems/maxItems, minLength/maxLength,
minimum/maximum and pattern. Other keywords are ignored, i.e. they never fail an answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from assay.api import evaluation
from assay.evaluator import agreement

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _type_ok(value: Any, expected: Any) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    return any(_TYPES.get(name, lambda v: True)(value) for name in names)


def matches_schema(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether a parsed JSON value satisfies the schema (the subset in this module's docstring)."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        return False
    if "enum" in schema and not any(agreement.json_equal(value, option) for option in schema["enum"]):
        return False
    if "const" in schema and not agreement.json_equal(value, schema["const"]):
        return False
    if isinstance(value, dict):
        return _object_ok(value, schema)
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping) and not all(matches_schema(item, items) for item in value):
            return False
        return schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value))
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return False
        return "pattern" not in schema or re.search(schema["pattern"], value) is not None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return schema.get("minimum", value) <= value <= schema.get("maximum", value)
    return True


def _object_ok(value: dict[str, Any], schema: Mapping[str, Any]) -> bool:
    if any(key not in value for key in schema.get("required", [])):
        return False
    properties: Mapping[str, Any] = schema.get("properties", {})
    for key, item in value.items():
        if key in properties:
            if not matches_schema(item, properties[key]):
                return False
            continue
        extra = schema.get("additionalProperties", True)
        if extra is False or (isinstance(extra, Mapping) and not matches_schema(item, extra)):
            return False
    return True


def _parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


class FormatCheck:
    """spec.format compiled once: `check(answer)` says whether the answer meets it."""

    def __init__(self, spec: evaluation.OutputFormat) -> None:
        # evaluation.OutputFormat already refused a schema that is not a JSON object and a regex that does not
        # compile (the spec is parsed before anything runs), so these cannot fail here.
        self.kind = spec.type
        self._schema: Mapping[str, Any] = (
            json.loads(spec.json_schema) if spec.type == "JSONSchema" and spec.json_schema else {}
        )
        self._pattern: re.Pattern[str] | None = (
            re.compile(spec.pattern) if spec.type == "Regex" and spec.pattern else None
        )

    def check(self, answer: str) -> bool | None:
        """Whether the answer meets the format; None when no format is configured (nothing was checked)."""
        if self.kind == "JSON":
            return _parse_json(answer)[0]
        if self.kind == "JSONSchema":
            ok, value = _parse_json(answer)
            return ok and matches_schema(value, self._schema)
        if self._pattern is not None:
            return self._pattern.fullmatch(answer) is not None
        return None

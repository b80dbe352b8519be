"""Generate docs/crd-reference.md, the field reference of assay's kinds, from the pydantic models.

It reads the CRDs as `assay.api.crdgen` builds them, so it documents exactly the schema the API server
enforces: every field's path, type, whether it is required, its default, its description and its
validation (enums, patterns, ranges, sizes, list semantics and the CEL rules checked at admission).

    python -m assay.api.docgen [--out docs/crd-reference.md]   write the file
    python -m assay.api.docgen --check                          exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from assay import GROUP, VERSION
from assay.api import crdgen

DEFAULT_OUT = pathlib.Path("docs/crd-reference.md")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One row of the reference: a field and everything the schema says about it."""

    path: str
    type: str
    required: bool
    default: str
    description: str
    validation: list[str]


def _type(node: Mapping[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = node.get("type", "object")
    if kind == "array":
        return "[]" + _type(node.get("items") or {})
    if kind == "object":
        if isinstance(node.get("additionalProperties"), dict):
            return "map[string]" + _type(node["additionalProperties"])
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            return "object (any fields)"
        return "object"
    if node.get("format"):
        return f"{kind} ({node['format']})"
    return str(kind)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _code(value: Any) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value, separators=(", ", ": "))
    return f"`{text}`"


def _rules(node: Mapping[str, Any]) -> list[str]:
    """The node's own validation, in words."""
    rules = []
    if "enum" in node:
        rules.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    if "pattern" in node:
        rules.append(f"matches {_code(node['pattern'])}")
    bounds = [
        f"{strict if node.get(exclusive) else loose} {_number(node[bound])}"
        for bound, exclusive, strict, loose in (
            ("minimum", "exclusiveMinimum", ">", ">="),
            ("maximum", "exclusiveMaximum", "<", "<="),
        )
        if bound in node
    ]
    if bounds:
        rules.append(" and ".join(bounds))
    for low, high, what in (("minLength", "maxLength", "length"), ("minItems", "maxItems", "items")):
        if low in node and high in node:
            rules.append(f"{what} {node[low]} to {node[high]}")
        elif low in node:
            rules.append(f"{what} >= {node[low]}")
        elif high in node:
            rules.append(f"{what} <= {node[high]}")
    if "maxProperties" in node:
        rules.append(f"entries <= {node['maxProperties']}")
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys") or [])
        rules.append(f"list map keyed by {keys} (one entry per key)")
    elif list_type == "set":
        rules.append("unique items")
    for rule in node.get("x-kubernetes-validations") or []:
        where = f" (reported at {rule['fieldPath']})" if rule.get("fieldPath") else ""
        rules.append(f"rule {_code(rule['rule'])}: {_no_tags(rule['message'])}{where}")
    items = node.get("items")
    if node.get("type") == "array" and isinstance(items, dict) and items.get("type") != "object":
        rules += [f"each item {rule}" for rule in _rules(items)]
    return rules


def _default(node: Mapping[str, Any]) -> str:
    if "default" not in node:
        return ""
    if node.get("type") == "object" and "properties" in node:
        return "its fields' defaults"
    return _code(node["default"])


def fields(node: Mapping[str, Any], path: str, *, required: bool = False) -> Iterator[FieldDoc]:
    """The row of `node` at `path`, then the rows of every field below it, depth first in schema order."""
    yield FieldDoc(
        path=path,
        type=_type(node),
        required=required,
        default=_default(node),
        description=str(node.get("description", "")),
        validation=_rules(node),
    )
    target = node
    suffix = ""
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        target, suffix = node["items"], "[]"
    elif isinstance(node.get("additionalProperties"), dict):
        target, suffix = node["additionalProperties"], ".*"
    if target is not node and "properties" in target:
        # A list or map of objects: its item's own rules belong to the item row.
        yield from fields(target, path + suffix)
        return
    needed = set(node.get("required") or [])
    for name, child in (node.get("properties") or {}).items():
        yield from fields(child, f"{path}.{name}", required=name in needed)


def _no_tags(text: str) -> str:
    """Text that cannot open an HTML tag in Markdown ("<url>" stays visible)."""
    return _TAG_START.sub("&lt;", text)


def _text(value: str) -> str:
    """Markdown table cell text: no cell break, no HTML tag."""
    return _no_tags(value.replace("|", "\\|").replace("\n", " "))


def _table(rows: list[FieldDoc]) -> str:
    lines = [
        "| Field | Type | Required | Default | Description | Validation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        # Code spans keep their text verbatim: only the cell-ending pipe is escaped in them.
        default, validation = (text.replace("|", "\\|") for text in (row.default, "<br>".join(row.validation)))
        required = "yes" if row.required else ""
        lines.append(
            f"| `{row.path}` | {_text(row.type)} | {required} | {default} | {_text(row.description)} | {validation} |"
        )
    return "\n".join(lines)


def _kind_section(crd: Mapping[str, Any]) -> str:
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    columns = [
        f"| {c['name']} | `{c['jsonPath']}` | {c['type']} | {'wide' if c.get('priority') else 'default'} |"
        for c in version.get("additionalPrinterColumns") or []
    ]
    short = ", ".join(f"`{n}`" for n in names.get("shortNames") or [])
    parts = [
        f"## {names['kind']}",
        "",
        _text(schema.get("description", "")),
        "",
        f"`apiVersion: {GROUP}/{VERSION}`, `kind: {names['kind']}`, {crd['spec']['scope'].lower()}; plural "
        f"`{names['plural']}`, short names {short}; status subresource "
        f"{'enabled' if 'status' in (version.get('subresources') or {}) else 'disabled'}.",
        "",
        "### Printer columns (`kubectl get`)",
        "",
        "| Column | JSONPath | Type | Shown |",
        "| --- | --- | --- | --- |",
        *columns,
    ]
    for part in ("spec", "status"):
        rows = list(fields(schema["properties"][part], part, required=part in (schema.get("required") or [])))
        parts += ["", f"### {names['kind']} {part}", "", _table(rows)]
    return "\n".join(parts)


def render() -> str:
    """The whole reference page, from the CRDs generated now."""
    crds = sorted(crdgen.crds().values(), key=lambda c: c["spec"]["names"]["kind"] != "RoutePolicy")
    kinds = [c["spec"]["names"]["kind"] for c in crds]
    header = [
        "# CRD reference",
        "",
        "<!-- Generated by `python -m assay.api.docgen` from the pydantic models in operator/assay/api. Do not edit",
        "     by hand: tests/unit/api/test_crd_reference.py fails when this file differs from the generator. -->",
        "",
        f"API group `{GROUP}`, version `{VERSION}`. Field paths use the wire names (camelCase); `[]` is an item of",
        "a list, `.*` a value of a map. Defaults are applied by the API server; the rules are checked at admission,",
        "so an invalid object is refused with the rule's message. `kubectl explain` shows the same descriptions.",
        "",
        *[f"- [{kind}](#{kind.lower()})" for kind in kinds],
    ]
    return "\n".join([*header, *("\n" + _kind_section(crd) for crd in crds)]) + "\n"


def stale(path: pathlib.Path) -> bool:
    """The committed reference differs from what the models generate (or is missing)."""
    return not path.exists() or path.read_text(encoding="utf-8") != render()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assay.api.docgen", description="Write docs/crd-reference.md.")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="output file")
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    if args.check:
        if stale(args.out):
            print(f"{args.out} is stale: run `python -m assay.api.docgen`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(), encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

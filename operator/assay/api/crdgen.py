"""Generate the CustomResourceDefinitions from the pydantic models: the models are the single source of
truth, `crds/*.yaml` is their committed output, and a test fails when the two differ.

    python -m assay.api.crdgen [--out crds/]      write the files
    python -m assay.api.crdgen --check            exit 1 if the committed files are stale
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys
from typing import Any

import pydantic
import pydantic.json_schema
import yaml

from assay import GROUP, VERSION
from assay.api import qualificationrun, routepolicy

# Keys a structural schema accepts (OpenAPI v3.0 subset used by apiextensions/v1).
_DROP = {"title", "$defs", "discriminator", "examples"}


class StructuralSchemaError(ValueError):
    """The pydantic schema uses a construct a structural CRD schema cannot express."""


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node["$ref"]
    name = ref.rsplit("/", 1)[-1]
    if name not in defs:
        raise StructuralSchemaError(f"unresolved $ref {ref}")
    merged = copy.deepcopy(defs[name])
    # Sibling keys of a $ref (a field's description, default) win over the referenced model's own.
    for key, value in node.items():
        if key != "$ref":
            merged[key] = value
    return merged


def structural(node: Any, defs: dict[str, Any], *, path: str = "") -> Any:
    """Rewrite one pydantic JSON-schema node into the structural form the apiserver requires."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return structural(_deref(node, defs), defs, path=path)
    node = dict(node)
    if "anyOf" in node:
        options = node.pop("anyOf")
        variants = [v for v in options if v.get("type") != "null"]
        nullable = len(variants) < len(options)
        if len(variants) == 1:
            inner = structural(variants[0], defs, path=path)
            merged = {**inner, **node}
            if nullable:
                merged["nullable"] = True
            node = merged
        elif {v.get("type") for v in variants} == {"integer", "string"}:
            node["x-kubernetes-int-or-string"] = True
        else:
            raise StructuralSchemaError(f"{path or '<root>'}: unions other than X | None or int | str")
    if node.get("default", 0) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[flag] = node[bound]
            node[bound] = True
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if node.get("additionalProperties") is True or (node.get("type") is None and "properties" not in node):
        node.pop("additionalProperties", None)
        if node.get("type") is None and not node.get("x-kubernetes-int-or-string"):
            node["x-kubernetes-preserve-unknown-fields"] = True
            node.setdefault("type", "object")
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    if node.pop("uniqueItems", False):
        node["x-kubernetes-list-type"] = "set"
    for key in _DROP:
        node.pop(key, None)
    if "properties" in node:
        node["properties"] = {
            name: structural(prop, defs, path=f"{path}.{name}") for name, prop in node["properties"].items()
        }
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural(node["additionalProperties"], defs, path=f"{path}[*]")
    if isinstance(node.get("items"), dict):
        node["items"] = structural(node["items"], defs, path=f"{path}[]")
    return node


class _FactoryDefaults(pydantic.json_schema.GenerateJsonSchema):
    """Also emit defaults made by a default_factory (lists, maps), so the CRD defaults what pydantic does."""

    def get_default_value(self, schema: Any) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()
        return super().get_default_value(schema)


def model_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.pop("$defs", {})
    return structural(raw, defs)


# assay writes both kinds' names into label values (assay.dev/policy, assay.dev/run), which Kubernetes caps at 63
# characters: a longer name would be stored, then fail every reconcile. The apiserver exposes only name and
# generateName of metadata to CEL.
NAME_RULE = {
    "rule": "size(self.metadata.name) <= 63",
    "message": "metadata.name must be at most 63 characters: assay uses it as a label value",
}


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    spec: type[pydantic.BaseModel],
    status: type[pydantic.BaseModel],
    printer_columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "x-kubernetes-validations": [NAME_RULE],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version: assay.dev/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind: {kind}."},
            "metadata": {"type": "object"},
            "spec": model_schema(spec),
            "status": model_schema(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "assay", "app.kubernetes.io/part-of": "assay"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["assay"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD manifest, for every kind assay serves."""
    return {
        f"{GROUP}_routepolicies.yaml": _crd(
            kind="RoutePolicy",
            plural="routepolicies",
            short_names=["rp", "routepolicy"],
            spec=routepolicy.RoutePolicySpec,
            status=routepolicy.RoutePolicyStatus,
            printer_columns=routepolicy.PRINTER_COLUMNS,
            description="RoutePolicy qualifies cheaper candidates for one LLM route on the team's own prompts, "
            "promotes a winner in the gateway and rolls it back on drift.",
        ),
        f"{GROUP}_qualificationruns.yaml": _crd(
            kind="QualificationRun",
            plural="qualificationruns",
            short_names=["qr", "qrun"],
            spec=qualificationrun.QualificationRunSpec,
            status=qualificationrun.QualificationRunStatus,
            printer_columns=qualificationrun.PRINTER_COLUMNS,
            description="QualificationRun evaluates one candidate against the baseline in a Job and decides "
            "Passed, Failed or Inconclusive with stated confidence.",
        ),
    }


HEADER = "# Generated by `python -m assay.api.crdgen` from operator/assay/api. Do not edit by hand.\n"


def render(manifest: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(manifest, sort_keys=False, width=120)


def write(out: pathlib.Path) -> list[pathlib.Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, manifest in crds().items():
        path = out / name
        path.write_text(render(manifest))
        written.append(path)
    return written


def stale(out: pathlib.Path) -> list[str]:
    """Names of committed CRD files that differ from what the models generate."""
    return [
        name
        for name, manifest in crds().items()
        if not (out / name).exists() or (out / name).read_text() != render(manifest)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="assay crds", description="Generate the CRDs from the API models.")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("crds"), help="output directory")
    parser.add_argument("--check", action="store_true", help="fail if the files in --out are stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            print(f"{args.out / name} is stale: run `python -m assay.api.crdgen`", file=sys.stderr)
        return 1 if names else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

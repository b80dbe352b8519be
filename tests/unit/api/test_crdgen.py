"""The CRDs are generated from the pydantic models, structurally valid, and committed up to date."""

from __future__ import annotations

import pathlib
from typing import Any

import pydantic
import pytest
import yaml

from assay.api import crdgen, evaluation, qualificationrun, routepolicy

REPO = pathlib.Path(__file__).resolve().parents[3]


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return crdgen.crds()


def test_committed_crds_match_the_models():
    assert crdgen.stale(REPO / "crds") == [], "run `python -m assay.api.crdgen`"


def test_schemas_are_structural(manifests):
    for name, crd in manifests.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            assert "$ref" not in node, f"{name}{path}"
            assert "anyOf" not in node and "oneOf" not in node and "allOf" not in node, f"{name}{path}"
            assert node.get("additionalProperties") is not False, f"{name}{path}"
            assert "title" not in node or path.endswith(".properties"), f"{name}{path}"
            if "properties" in node and isinstance(node["properties"], dict) and not path.endswith(".properties"):
                assert node.get("type") == "object", f"{name}{path} lacks type: object"


def test_every_field_has_a_description(manifests):
    for name, crd in manifests.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            if path.endswith(".properties"):
                for field, prop in node.items():
                    if field in {"apiVersion", "kind", "metadata"}:
                        continue
                    assert prop.get("description"), f"{name}{path}.{field} has no description"


def test_status_subresource_and_printer_columns(manifests):
    rp = manifests["assay.dev_routepolicies.yaml"]["spec"]["versions"][0]
    assert rp["subresources"] == {"status": {}}
    assert [c["name"] for c in rp["additionalPrinterColumns"] if not c.get("priority")] == [
        "Phase",
        "Active",
        "Candidate",
        "Lower-Bound",
        "Savings",
        "Spend/1d",
        "Age",
    ]
    assert [c["name"] for c in rp["additionalPrinterColumns"] if c.get("priority")] == ["Realized", "Month-End"]
    qr = manifests["assay.dev_qualificationruns.yaml"]["spec"]["versions"][0]
    assert [c["name"] for c in qr["additionalPrinterColumns"] if not c.get("priority")] == [
        "Phase",
        "Progress",
        "Estimate",
        "Lower",
        "Upper",
        "Age",
    ]


def test_optional_fields_are_nullable_without_null_defaults(manifests):
    spec = manifests["assay.dev_qualificationruns.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    prop = spec["properties"]["spec"]["properties"]["baseline"]["properties"]["systemPrompt"]
    assert prop["type"] == "string" and prop["nullable"] is True and "default" not in prop


def test_exclusive_bounds_use_the_openapi_v3_0_form(manifests):
    spec = manifests["assay.dev_routepolicies.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    margin = spec["properties"]["spec"]["properties"]["qualification"]["properties"]["test"]["properties"]["margin"]
    assert margin["minimum"] == 0 and margin["exclusiveMinimum"] is True
    assert margin["maximum"] == 0.5 and margin["exclusiveMaximum"] is True


def test_conditions_follow_metav1_condition(manifests):
    status = manifests["assay.dev_routepolicies.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["reason"]["pattern"].startswith("^[A-Za-z]")


def _apply_crd_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Apply `default`s the way the apiserver does: to absent properties of present objects."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    out = dict(value)
    for name, prop in schema["properties"].items():
        if name not in out and "default" in prop:
            out[name] = prop["default"]
        if name in out:
            out[name] = _apply_crd_defaults(prop, out[name])
    return out


@pytest.mark.parametrize(
    "model",
    [
        evaluation.TestSettings,
        evaluation.Execution,
        evaluation.OutputFormat,
        routepolicy.Promotion,
        routepolicy.Rollback,
    ],
)
def test_pydantic_defaults_equal_crd_defaults(model: type[pydantic.BaseModel]):
    schema = crdgen.model_schema(model)
    from_crd = _apply_crd_defaults(schema, {})
    from_pydantic = model().model_dump(by_alias=True, exclude_none=True, mode="json")
    assert from_crd == from_pydantic


def test_defaults_of_a_minimal_policy_match_between_crd_and_pydantic():
    doc = yaml.safe_load((REPO / "examples" / "routepolicy-litellm.yaml").read_text())
    schema = crdgen.model_schema(routepolicy.RoutePolicySpec)
    defaulted = _apply_crd_defaults(schema, doc["spec"])
    parsed = routepolicy.RoutePolicySpec.model_validate(doc["spec"]).to_wire()
    assert defaulted == parsed


def test_cel_rules_carry_messages_and_have_bounded_lists(manifests):
    for name, crd in manifests.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            for rule in node.get("x-kubernetes-validations", []):
                assert rule["message"], f"{name}{path}"
            if node.get("type") == "array":
                assert "maxItems" in node, f"{name}{path} needs maxItems (CEL cost budget)"


def test_structural_rejects_unions_it_cannot_express():
    class Weird(pydantic.BaseModel):
        x: int | list[int]

    with pytest.raises(crdgen.StructuralSchemaError, match="x"):
        crdgen.model_schema(Weird)


def test_check_mode_reports_stale_files(tmp_path):
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 0
    first = next(tmp_path.glob("*.yaml"))
    first.write_text(first.read_text() + "# edited\n")
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1


def test_qualification_run_spec_round_trips_through_the_wire_form():
    doc = yaml.safe_load((REPO / "examples" / "qualificationrun.yaml").read_text())
    spec = qualificationrun.QualificationRunSpec.model_validate(doc["spec"])
    assert spec.candidate.name == "mini"
    assert spec.test.max_samples == 400 and spec.test.margin == 0.05
    again = qualificationrun.QualificationRunSpec.model_validate(spec.to_wire())
    assert again == spec

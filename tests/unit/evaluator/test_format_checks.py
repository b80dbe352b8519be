"""spec.format is checked on both answers; JSONSchema uses the subset assay implements itself."""

from __future__ import annotations

import json

import pydantic
import pytest

from assay.api import evaluation
from assay.evaluator import formats

SCHEMA = {
    "type": "object",
    "required": ["label", "score"],
    "properties": {
        "label": {"type": "string", "enum": ["spam", "ham"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2},
        "count": {"type": "integer"},
    },
    "additionalProperties": False,
}


def check(kind: str, answer: str, **fields: str) -> bool | None:
    return formats.FormatCheck(evaluation.OutputFormat(type=kind, **fields)).check(answer)


def test_type_none_checks_nothing():
    assert check("None", "free text") is None


def test_json_requires_a_json_document():
    assert check("JSON", ' {"a": 1} ')
    assert check("JSON", "[1, 2]")
    assert not check("JSON", 'Sure! {"a": 1}')


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ({"label": "spam", "score": 0.9}, True),
        ({"label": "ham", "score": 0, "tags": ["a", "b"], "count": 3}, True),
        ({"label": "ham", "score": 1, "count": 3.0}, True),
        ({"label": "spam"}, False),  # required
        ({"label": "eggs", "score": 0.5}, False),  # enum
        ({"label": "spam", "score": 1.5}, False),  # maximum
        ({"label": "spam", "score": "high"}, False),  # type
        ({"label": "spam", "score": True}, False),  # a boolean is not a number
        ({"label": "spam", "score": 0.1, "tags": ["toolong"]}, False),  # items.maxLength
        ({"label": "spam", "score": 0.1, "tags": ["a", "b", "c"]}, False),  # maxItems
        ({"label": "spam", "score": 0.1, "count": 1.5}, False),  # integer
        ({"label": "spam", "score": 0.1, "extra": 1}, False),  # additionalProperties
        (["not", "an", "object"], False),
    ],
)
def test_json_schema_subset(answer, ok):
    assert check("JSONSchema", json.dumps(answer), json_schema=json.dumps(SCHEMA)) is ok


def test_json_schema_answer_must_be_json():
    assert not check("JSONSchema", "label: spam", json_schema=json.dumps(SCHEMA))


def test_regex_must_match_the_whole_answer():
    assert check("Regex", "ticket-123", pattern=r"ticket-\d+")
    assert not check("Regex", "see ticket-123", pattern=r"ticket-\d+")


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"type": "JSONSchema", "jsonSchema": "{not json"}, "jsonSchema", "not valid JSON"),
        ({"type": "JSONSchema", "jsonSchema": "[1, 2]"}, "jsonSchema", "must be a JSON object"),
        ({"type": "JSONSchema", "jsonSchema": '{"pattern": "(x"}'}, "jsonSchema", "not a valid regular expression"),
        ({"type": "Regex", "pattern": "(unclosed"}, "pattern", "not a valid Python regular expression"),
    ],
)
def test_unusable_format_spec_is_refused_when_the_spec_is_parsed_naming_the_field(fields, field, problem):
    with pytest.raises(pydantic.ValidationError) as caught:
        evaluation.OutputFormat.model_validate(fields)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert problem in error["msg"]

"""The dataset: JSON Lines of recorded traffic, parsed into records, with every malformed line reported by
its 1-based line number and the reason.

A record is `{"id": str, "messages": [...], "baseline_response"?: str, "reference"?: str, "metadata"?: {}}`
where messages are in OpenAI chat format (roles system, user, assistant) and the last one is the user's.
A repeated id makes the later line malformed. Blank lines are not records and are not reported.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclasses.dataclass(frozen=True)
class Record:
    """One recorded conversation, ready to be sent to both models."""

    id: str
    messages: list[dict[str, Any]]
    line: int
    baseline_response: str | None = None
    reference: str | None = None
    metadata: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class InvalidLine:
    """A line that is not a valid record, and why."""

    line: int
    reason: str


@dataclasses.dataclass(frozen=True)
class ParsedDataset:
    """The valid records in file order, and the malformed lines in line order."""

    records: list[Record]
    invalid: list[InvalidLine]


class MalformedRecord(ValueError):
    """A dataset line is not a valid record; the message says why."""


def _message_problem(index: int, message: object) -> str | None:
    if not isinstance(message, Mapping):
        return f"messages[{index}] must be an object with role and content"
    role = message.get("role")
    if role not in ROLES:
        return f"messages[{index}].role must be one of {', '.join(ROLES)} (got {role!r})"
    content = message.get("content")
    if isinstance(content, str):
        return None
    if isinstance(content, list) and content and all(isinstance(p, Mapping) and "type" in p for p in content):
        return None
    return f"messages[{index}].content must be a string or a non-empty list of content parts"


def _optional_string(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedRecord(f"'{key}' must be a string (got {type(value).__name__})")
    return value


def parse_record(text: str, *, line: int) -> Record:
    """One line as a record; raises MalformedRecord saying what is wrong with it."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedRecord(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise MalformedRecord(f"a record must be a JSON object (got {type(obj).__name__})")
    record_id = obj.get("id")
    if record_id is None:
        raise MalformedRecord("missing 'id'")
    if not isinstance(record_id, str) or not record_id:
        raise MalformedRecord("'id' must be a non-empty string")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MalformedRecord("'messages' must be a non-empty list")
    for index, message in enumerate(messages):
        if problem := _message_problem(index, message):
            raise MalformedRecord(problem)
    if messages[-1]["role"] != "user":
        raise MalformedRecord(f"the last message must have role user (got {messages[-1]['role']})")
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise MalformedRecord("'metadata' must be an object")
    return Record(
        id=record_id,
        messages=messages,
        line=line,
        baseline_response=_optional_string(obj, "baseline_response"),
        reference=_optional_string(obj, "reference"),
        metadata=metadata,
    )


def parse_jsonl(text: str) -> ParsedDataset:
    """Every line of a JSON Lines text: the valid records and the malformed lines (1-based).

    Lines are split on "\\n" only (a JSON string may hold U+2028, which str.splitlines would split on).
    """
    records: list[Record] = []
    invalid: list[InvalidLine] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            record = parse_record(line, line=number)
        except MalformedRecord as exc:
            invalid.append(InvalidLine(number, str(exc)))
            continue
        if record.id in first_line_of:
            invalid.append(
                InvalidLine(number, f"duplicate id {record.id!r} (first on line {first_line_of[record.id]})")
            )
            continue
        first_line_of[record.id] = number
        records.append(record)
    return ParsedDataset(records=records, invalid=invalid)

"""The one timestamp format: RFC 3339 in UTC with a `Z`, microseconds when there are any (as pydantic writes
datetimes, so a time written by hand and one dumped from a model read back the same)."""

from __future__ import annotations

import datetime
from typing import Any


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def stamp(moment: datetime.datetime) -> str:
    """`moment` as status and Events carry it."""
    moment = moment.astimezone(datetime.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def parse(value: Any) -> datetime.datetime | None:
    """A stamp (or a datetime) back as an aware datetime; None for empty values."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))

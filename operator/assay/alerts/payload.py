"""Alertmanager's webhook payload (version 4), parsed and checked field by field.

The shape, as Alertmanager's documentation gives it (docs/configuration.md, section `<webhook_config>`,
https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)::

    {
      "version": "4",
      "groupKey": <string>,              // key identifying the group of alerts (e.g. to deduplicate)
      "truncatedAlerts": <int>,          // how many alerts have been truncated due to "max_alerts"
      "status": "<resolved|firing>",
      "receiver": <string>,
      "groupLabels": <object>,
      "commonLabels": <object>,
      "commonAnnotations": <object>,
      "externalURL": <string>,           // backlink to the Alertmanager.
      "alerts": [
        {
          "status": "<resolved|firing>",
          "labels": <object>,
          "annotations": <object>,
          "startsAt": "<rfc3339>",
          "endsAt": "<rfc3339>",
          "generatorURL": <string>,      // identifies the entity that caused the alert
          "fingerprint": <string>        // fingerprint to identify the alert
        },
        ...
      ]
    }

Required here: `version` ("4"), `status`, `alerts`, and in each alert `status`, `labels` and `startsAt`; the
other fields are checked for their type when present, so a hand-written test payload may leave them out.
Nothing in this module logs: annotations can carry free text (even prompts) and stay in the objects.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, Literal

SUPPORTED_VERSION = "4"

AlertStatus = Literal["firing", "resolved"]
_STATUSES: tuple[AlertStatus, ...] = ("firing", "resolved")

# prometheus/common model: FNV-1a 64 over sorted label names and values, each followed by 0xff.
_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_LABEL_SEPARATOR = 0xFF
_MASK64 = (1 << 64) - 1


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 webhook payload. The message starts with the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alert of a notification, as Alertmanager sent it."""

    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime.datetime
    ends_at: datetime.datetime | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        """The `alertname` label, or "" when the alert has none."""
        return self.labels.get("alertname", "")


@dataclasses.dataclass(frozen=True)
class Notification:
    """One webhook delivery: a group of alerts that share a route in Alertmanager."""

    version: str
    group_key: str
    status: AlertStatus
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    truncated_alerts: int
    alerts: tuple[Alert, ...]


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (16 hex digits), for payloads that leave `fingerprint` out.

    Same algorithm as prometheus/common's `LabelSet.Fingerprint`, so it equals what Alertmanager would send.
    """
    digest = _FNV64_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                digest = ((digest ^ byte) * _FNV64_PRIME) & _MASK64
            digest = ((digest ^ _LABEL_SEPARATOR) * _FNV64_PRIME) & _MASK64
    return f"{digest:016x}"


def parse(body: Any) -> Notification:
    """The notification in a decoded JSON body.

    Raises PayloadError naming the first field that is missing or of the wrong type, e.g.
    `alerts[2].labels: must be an object`, or `version: ...` for any version other than "4".
    """
    if not isinstance(body, dict):
        raise PayloadError("body", f"must be a JSON object, got {_json_type(body)}")
    version = body.get("version")
    if version != SUPPORTED_VERSION:
        raise PayloadError(
            "version",
            f'must be "{SUPPORTED_VERSION}" (Alertmanager webhook v4), got {version!r}; '
            "point a webhook_config of Alertmanager >= 0.16 at this receiver",
        )
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", f"must be a list, got {_json_type(raw_alerts)}")
    return Notification(
        version=version,
        group_key=_optional_string(body.get("groupKey"), "groupKey"),
        status=_status(body.get("status"), "status"),
        receiver=_optional_string(body.get("receiver"), "receiver"),
        group_labels=_string_map(body.get("groupLabels"), "groupLabels", required=False),
        common_labels=_string_map(body.get("commonLabels"), "commonLabels", required=False),
        common_annotations=_string_map(body.get("commonAnnotations"), "commonAnnotations", required=False),
        external_url=_optional_string(body.get("externalURL"), "externalURL"),
        truncated_alerts=_truncated_alerts(body.get("truncatedAlerts", 0)),
        alerts=tuple(_alert(raw, f"alerts[{index}]") for index, raw in enumerate(raw_alerts)),
    )


def _alert(raw: Any, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise PayloadError(where, f"must be an object, got {_json_type(raw)}")
    status = _status(raw.get("status"), f"{where}.status")
    labels = _string_map(raw.get("labels"), f"{where}.labels", required=True)
    starts_at = _timestamp(raw.get("startsAt"), f"{where}.startsAt")
    fingerprint = _optional_string(raw.get("fingerprint"), f"{where}.fingerprint")
    return Alert(
        status=status,
        labels=labels,
        annotations=_string_map(raw.get("annotations"), f"{where}.annotations", required=False),
        starts_at=starts_at,
        ends_at=None if raw.get("endsAt") is None else _timestamp(raw["endsAt"], f"{where}.endsAt"),
        generator_url=_optional_string(raw.get("generatorURL"), f"{where}.generatorURL"),
        fingerprint=fingerprint or labels_fingerprint(labels),
    )


def _status(value: Any, field: str) -> AlertStatus:
    for status in _STATUSES:
        if value == status:
            return status
    raise PayloadError(field, f'must be "firing" or "resolved", got {value!r}')


def _optional_string(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(field, f"must be a string, got {_json_type(value)}")
    return value


def _string_map(value: Any, field: str, *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(field, f"must be an object, got {_json_type(value)}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{field}.{name}", f"must be a string, got {_json_type(item)}")
    return dict(value)


def _timestamp(value: Any, field: str) -> datetime.datetime:
    if not isinstance(value, str):
        raise PayloadError(field, f"must be an RFC 3339 timestamp string, got {_json_type(value)}")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(field, f"must be an RFC 3339 timestamp, got {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise PayloadError(field, f"must be an RFC 3339 timestamp with a time zone, got {value[:40]!r}")
    return parsed.astimezone(datetime.UTC)


def _truncated_alerts(value: Any) -> int:
    # bool is an int in Python, not in JSON.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PayloadError("truncatedAlerts", f"must be a non-negative integer, got {value!r}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

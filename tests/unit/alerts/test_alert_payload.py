"""The webhook body is Alertmanager's v4 payload; anything else is refused with the field it is about."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from alerts_harness import alert, notification

from assay.alerts import payload


def test_parses_a_payload_as_alertmanager_sends_it():
    body = notification(
        alert({"alertname": "JudgeDrift", "namespace": "team-a"}),
        alert({"alertname": "JudgeDrift", "namespace": "team-b"}, status="resolved", fingerprint="0000000000000002"),
    )

    parsed = payload.parse(body)

    assert parsed.version == "4"
    assert parsed.receiver == "assay"
    assert parsed.group_key == '{}:{alertname="JudgeDrift"}'
    assert [item.status for item in parsed.alerts] == ["firing", "resolved"]
    first = parsed.alerts[0]
    assert first.name == "JudgeDrift"
    assert first.labels == {"alertname": "JudgeDrift", "namespace": "team-a"}
    assert first.fingerprint == "f00dfeedcafe0001"
    # Go writes nanoseconds; the timestamp is kept to the microsecond, in UTC.
    assert first.starts_at == datetime.datetime(2025, 11, 30, 10, 0, 0, 123456, tzinfo=datetime.UTC)
    assert parsed.alerts[1].ends_at == datetime.datetime(2025, 11, 30, 11, 0, tzinfo=datetime.UTC)


def test_timestamps_with_offsets_are_normalized_to_utc():
    parsed = payload.parse(notification(alert({"alertname": "A"}, starts_at="2025-11-30T12:00:00+02:00")))

    assert parsed.alerts[0].starts_at == datetime.datetime(2025, 11, 30, 10, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize("version", ["3", "5", 4, None, ""])
def test_rejects_every_version_but_4(version: Any):
    body = notification(alert({"alertname": "A"}))
    body["version"] = version

    with pytest.raises(payload.PayloadError, match=r'^version: must be "4"') as caught:
        payload.parse(body)

    assert caught.value.field == "version"


def _third_alert_labels_is_a_list(body: dict[str, Any]) -> None:
    body["alerts"][2]["labels"] = ["alertname", "A"]


def _label_value_is_a_number(body: dict[str, Any]) -> None:
    body["alerts"][0]["labels"]["severity"] = 3


def _alert_status_is_pending(body: dict[str, Any]) -> None:
    body["alerts"][1]["status"] = "pending"


def _starts_at_is_not_a_timestamp(body: dict[str, Any]) -> None:
    body["alerts"][0]["startsAt"] = "yesterday"


def _starts_at_has_no_time_zone(body: dict[str, Any]) -> None:
    body["alerts"][0]["startsAt"] = "2025-11-30T10:00:00"


def _starts_at_is_missing(body: dict[str, Any]) -> None:
    del body["alerts"][1]["startsAt"]


def _alerts_is_an_object(body: dict[str, Any]) -> None:
    body["alerts"] = {"0": body["alerts"][0]}


def _an_alert_is_a_string(body: dict[str, Any]) -> None:
    body["alerts"][1] = "JudgeDrift"


def _annotation_is_an_object(body: dict[str, Any]) -> None:
    body["alerts"][2]["annotations"] = {"summary": {"text": "x"}}


def _common_labels_is_a_list(body: dict[str, Any]) -> None:
    body["commonLabels"] = []


def _group_status_is_unknown(body: dict[str, Any]) -> None:
    body["status"] = "ok"


def _truncated_alerts_is_negative(body: dict[str, Any]) -> None:
    body["truncatedAlerts"] = -1


def _fingerprint_is_a_number(body: dict[str, Any]) -> None:
    body["alerts"][0]["fingerprint"] = 12


@pytest.mark.parametrize(
    ("breakage", "field", "problem"),
    [
        (_third_alert_labels_is_a_list, "alerts[2].labels", "must be an object"),
        (_label_value_is_a_number, "alerts[0].labels.severity", "must be a string"),
        (_alert_status_is_pending, "alerts[1].status", 'must be "firing" or "resolved"'),
        (_starts_at_is_not_a_timestamp, "alerts[0].startsAt", "must be an RFC 3339 timestamp"),
        (_starts_at_has_no_time_zone, "alerts[0].startsAt", "with a time zone"),
        (_starts_at_is_missing, "alerts[1].startsAt", "got null"),
        (_alerts_is_an_object, "alerts", "must be a list"),
        (_an_alert_is_a_string, "alerts[1]", "must be an object"),
        (_annotation_is_an_object, "alerts[2].annotations.summary", "must be a string"),
        (_common_labels_is_a_list, "commonLabels", "must be an object"),
        (_group_status_is_unknown, "status", 'must be "firing" or "resolved"'),
        (_truncated_alerts_is_negative, "truncatedAlerts", "non-negative integer"),
        (_fingerprint_is_a_number, "alerts[0].fingerprint", "must be a string"),
    ],
)
def test_malformed_payload_names_the_field(breakage: Any, field: str, problem: str):
    body = copy.deepcopy(notification(alert({"alertname": "A"}), alert({"alertname": "B"}), alert({"alertname": "C"})))
    breakage(body)

    with pytest.raises(payload.PayloadError) as caught:
        payload.parse(body)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize("body", [[], "alerts", 4, None])
def test_a_body_that_is_not_an_object_is_refused(body: Any):
    with pytest.raises(payload.PayloadError, match=r"^body: must be a JSON object"):
        payload.parse(body)


def test_optional_group_fields_may_be_left_out_of_a_hand_written_payload():
    parsed = payload.parse(
        {
            "version": "4",
            "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2025-11-30T10:00:00Z"}],
        }
    )

    assert parsed.receiver == ""
    assert parsed.alerts[0].annotations == {}
    assert parsed.alerts[0].ends_at is None


def test_missing_fingerprint_is_computed_as_alertmanager_computes_it():
    # prometheus/common model's own test vector for LabelSet.Fingerprint: 5799056148416392346.
    labels = {"name": "garland, briggs", "fear": "love is not enough"}

    parsed = payload.parse(notification(alert(labels, fingerprint=None)))

    assert parsed.alerts[0].fingerprint == f"{5799056148416392346:016x}" == "507a62d79ee76c9a"
    assert payload.labels_fingerprint({}) == "cbf29ce484222325"


def test_fingerprint_does_not_depend_on_label_order_and_separates_names_from_values():
    assert payload.labels_fingerprint({"a": "b", "c": "d"}) == payload.labels_fingerprint({"c": "d", "a": "b"})
    assert payload.labels_fingerprint({"a": "bc"}) != payload.labels_fingerprint({"ab": "c"})

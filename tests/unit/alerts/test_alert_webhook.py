"""The webhook over real HTTP: abuse is answered and does nothing; a matching firing alert is answered 200 only
once its route is restored, and an error (which Alertmanager retries) until then."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
from alerts_harness import alert, notification, policy

from assay.alerts import matching, server

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Handled:
    def __init__(self) -> None:
        self.restored: list[str] = []
        self.already = 0
        self.duplicate = 0
        self.failed: list[str] = []


class Operator:
    """Stands in for the operator's side: the policies it lists, the rollbacks it was asked for, and (as the
    operator keeps it in status) which firings it acted on."""

    def __init__(self) -> None:
        self.policies: list[dict[str, Any]] = [
            policy("support-summary", match_labels={"alertname": "JudgeDrift", "route": "support-summary"})
        ]
        self.calls: list[tuple[list[matching.Match], float]] = []
        self.acted: set[tuple[str, str, Any]] = set()
        self.fail_rollbacks = False
        self.raise_rollbacks = False
        self.fail_listing = False
        self.ready = True
        self.listings = 0

    async def list_policies(self) -> list[dict[str, Any]]:
        self.listings += 1
        if self.fail_listing:
            raise RuntimeError("apiserver unavailable")
        return self.policies

    async def on_matches(self, matches: list[matching.Match], received_at: float) -> Handled:
        self.calls.append((matches, received_at))
        if self.raise_rollbacks:
            raise RuntimeError("gateway write failed")
        handled = Handled()
        for item in matches:
            key = (item.uid, item.fingerprint, item.starts_at)
            where = f"{item.namespace}/{item.name}"
            if self.fail_rollbacks:
                handled.failed.append(where)
            elif key in self.acted:
                handled.duplicate += 1
            else:
                self.acted.add(key)
                handled.restored.append(where)
        return handled


@pytest.fixture
def operator() -> Operator:
    return Operator()


@pytest.fixture
async def client(operator: Operator) -> AsyncIterator[httpx.AsyncClient]:
    app = server.make_app(
        token=TOKEN,
        list_policies=operator.list_policies,
        on_matches=operator.on_matches,
        ready=lambda: operator.ready,
        max_body_bytes=64 * 1024,
    )
    runner = await server.serve(app, host="127.0.0.1", port=0)
    try:
        base_url = f"http://127.0.0.1:{server.bound_port(runner)}"
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            yield http
    finally:
        await runner.cleanup()


def _count(outcome: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value("assay_alerts_received_total", {"outcome": outcome})
    return value or 0.0


DRIFT = {"alertname": "JudgeDrift", "route": "support-summary", "namespace": "team-a"}


async def test_matching_firing_alert_calls_on_matches_once_with_the_policy(client: httpx.AsyncClient, operator):
    before = _count("matched")
    loop_now = asyncio.get_running_loop().time()

    response = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {
        "restored": ["team-a/support-summary"],
        "ignored": {"resolved": 0, "already": 0, "duplicate": 0, "unmatched": 0},
    }
    assert len(operator.calls) == 1
    matches, received_at = operator.calls[0]
    assert [(item.namespace, item.name, item.alert_name) for item in matches] == [
        ("team-a", "support-summary", "JudgeDrift")
    ]
    # received_at is time.monotonic(), which is also what asyncio's default loop clock reads.
    assert loop_now <= received_at <= asyncio.get_running_loop().time()
    assert _count("matched") == before + 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
    ],
    ids=["missing", "wrong", "basic-scheme", "token-prefix", "no-scheme"],
)
async def test_wrong_or_missing_token_is_401_and_does_nothing(client, operator, headers: dict[str, str]):
    before = _count("unauthorized")

    response = await client.post("/alerts", json=notification(alert(DRIFT)), headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization" in response.json()["error"]
    assert operator.calls == []
    assert operator.listings == 0
    assert _count("unauthorized") == before + 1


async def test_bearer_scheme_is_case_insensitive(client, operator):
    response = await client.post(
        "/alerts", json=notification(alert(DRIFT)), headers={"Authorization": f"bearer {TOKEN}"}
    )

    assert response.status_code == 200


async def test_malformed_body_is_400_naming_the_field_and_does_nothing(client, operator):
    body = notification(alert(DRIFT), alert(DRIFT), alert(DRIFT))
    body["alerts"][2]["labels"] = "JudgeDrift"
    before = _count("bad_request")

    response = await client.post("/alerts", json=body, headers=AUTH)

    assert response.status_code == 400
    assert response.json() == {"error": "alerts[2].labels: must be an object, got a string"}
    assert operator.calls == []
    assert _count("bad_request") == before + 1


async def test_body_that_is_not_json_is_400(client, operator):
    response = await client.post(
        "/alerts", content=b"alerts=JudgeDrift", headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("body: not valid JSON")
    assert operator.calls == []


async def test_payload_version_other_than_4_is_400(client, operator):
    response = await client.post("/alerts", json=notification(alert(DRIFT), version="3"), headers=AUTH)

    assert response.status_code == 400
    assert response.json()["error"].startswith('version: must be "4"')
    assert operator.calls == []


async def test_body_over_the_limit_is_413_naming_the_limit_in_one_log_line(client, operator, caplog):
    caplog.set_level(logging.DEBUG, logger="assay.alerts")
    huge = notification(alert(DRIFT, annotations={"description": "x" * (65 * 1024)}))

    response = await client.post("/alerts", json=huge, headers=AUTH)

    assert response.status_code == 413
    assert response.json() == {"error": "body: larger than the webhook's limit of 64 KiB (65536 bytes)"}
    assert operator.calls == []
    assert operator.listings == 0
    assert [record.getMessage() for record in caplog.records] == [
        "Rejected an alert delivery from 127.0.0.1: body: larger than the webhook's limit of 64 KiB (65536 bytes)"
    ]


async def test_chunked_body_over_the_limit_is_413_too(client, operator):
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts what arrives
        for _ in range(65):
            yield b" " * 1024

    response = await client.post("/alerts", content=chunks(), headers=AUTH)

    assert response.status_code == 413
    assert response.json()["error"].startswith("body: larger than the webhook's limit of 64 KiB")
    assert operator.calls == []


async def test_alert_matching_no_policy_is_200_unmatched_and_does_nothing(client, operator):
    before = _count("unmatched")
    other_route = {"alertname": "JudgeDrift", "route": "billing-qa", "namespace": "team-a"}

    response = await client.post("/alerts", json=notification(alert(other_route)), headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {"restored": [], "ignored": {"resolved": 0, "already": 0, "duplicate": 0, "unmatched": 1}}
    assert operator.calls == []
    assert _count("unmatched") == before + 1


async def test_alert_from_another_namespace_does_not_roll_back(client, operator):
    elsewhere = {**DRIFT, "namespace": "team-b"}

    response = await client.post("/alerts", json=notification(alert(elsewhere)), headers=AUTH)

    assert response.json()["ignored"]["unmatched"] == 1
    assert operator.calls == []


async def test_resolved_alert_is_200_ignored_and_does_nothing(client, operator):
    before = _count("resolved")

    response = await client.post("/alerts", json=notification(alert(DRIFT, status="resolved")), headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {"restored": [], "ignored": {"resolved": 1, "already": 0, "duplicate": 0, "unmatched": 0}}
    assert operator.calls == []
    assert operator.listings == 0
    assert _count("resolved") == before + 1


async def test_repeated_firing_is_200_duplicate_and_on_matches_is_not_called_again(client, operator):
    first = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)
    before = _count("duplicate")

    second = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    assert first.json()["restored"] != []
    assert second.status_code == 200
    assert second.json() == {"restored": [], "ignored": {"resolved": 0, "already": 0, "duplicate": 1, "unmatched": 0}}
    assert _count("duplicate") == before + 1


async def test_new_firing_of_the_same_alert_acts_again(client, operator):
    await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    response = await client.post(
        "/alerts", json=notification(alert(DRIFT, starts_at="2025-11-30T14:00:00Z")), headers=AUTH
    )

    assert len(response.json()["restored"]) == 1
    assert len(operator.calls) == 2


async def test_rollback_not_restored_is_503_until_it_is(client, operator):
    operator.fail_rollbacks = True

    failed = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)
    operator.fail_rollbacks = False
    retried = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    assert failed.status_code == 503
    assert failed.json()["failed"] == ["team-a/support-summary"]
    assert "retry" in failed.json()["error"]
    assert retried.status_code == 200
    assert retried.json()["restored"] == ["team-a/support-summary"]


async def test_acting_that_raises_is_503(client, operator):
    operator.raise_rollbacks = True

    response = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    assert response.status_code == 503
    assert "retry" in response.json()["error"]


async def test_before_the_index_is_warm_every_delivery_is_503(client, operator):
    operator.ready = False

    response = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert operator.calls == [] and operator.listings == 0


async def test_policies_that_cannot_be_listed_are_500(client, operator):
    operator.fail_listing = True

    response = await client.post("/alerts", json=notification(alert(DRIFT)), headers=AUTH)

    assert response.status_code == 500
    assert operator.calls == []


async def test_mixed_delivery_is_counted_alert_by_alert(client, operator):
    body = notification(
        alert(DRIFT, fingerprint="0000000000000001"),
        alert({**DRIFT, "route": "billing-qa"}, fingerprint="0000000000000002"),
        alert(DRIFT, status="resolved", fingerprint="0000000000000003"),
    )

    response = await client.post("/alerts", json=body, headers=AUTH)

    assert response.json()["ignored"] == {"resolved": 1, "already": 0, "duplicate": 0, "unmatched": 1}
    assert response.json()["restored"] == ["team-a/support-summary"]
    assert [m.fingerprint for m in operator.calls[0][0]] == ["0000000000000001"]


async def test_healthz_needs_no_token(client):
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_logs_carry_neither_the_token_nor_annotation_text(client, operator, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="assay.alerts")
    secret_text = "customer prompt: my card number is 4111"
    operator.fail_rollbacks = True

    await client.post(
        "/alerts", json=notification(alert(DRIFT, annotations={"description": secret_text})), headers=AUTH
    )
    await client.post("/alerts", json=notification(alert(DRIFT)), headers={"Authorization": f"Bearer {TOKEN}-x"})
    operator.fail_rollbacks = False
    await client.post(
        "/alerts", json=notification(alert(DRIFT, annotations={"description": secret_text})), headers=AUTH
    )

    logged = caplog.text + json.dumps([record.args for record in caplog.records], default=str)
    assert "team-a/support-summary" in caplog.text
    assert TOKEN not in logged
    assert secret_text not in logged


def test_an_empty_token_is_refused():
    async def nothing() -> list[dict[str, Any]]:
        return []

    async def ignore(matches: list[matching.Match], received_at: float) -> Handled:
        return Handled()

    with pytest.raises(ValueError, match="token must not be empty"):
        server.make_app(token=" \n", list_policies=nothing, on_matches=ignore)

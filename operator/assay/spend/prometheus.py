"""Instant queries against Prometheus's HTTP API (`/api/v1/query`), through the one HTTP client factory and its
retry policy (assay.httpclient), so the egress rule applies and 5xx/timeouts are retried the same way as
every other call.

Every failure is its own exception, never an empty answer: a spend figure read from a Prometheus that is down
must not look like zero spend. `NoSeries` is raised by callers that need at least one series (a spend
query answering nothing means the metric is not scraped, not that nothing was spent).
"""

from __future__ import annotations

import dataclasses
import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from assay import egress, httpclient

QUERY_PATH = "/api/v1/query"
ENV_URL = "ASSAY_PROMETHEUS_URL"
ENV_TOKEN = "ASSAY_PROMETHEUS_TOKEN"
ENV_TOKEN_FILE = "ASSAY_PROMETHEUS_TOKEN_FILE"
# Prometheus durations (`1d`, `90s`, `1h30m`, `61234ms`): what `increase(...[w])` accepts.
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


class PrometheusError(Exception):
    """A spend figure could not be read; the message names the query's target and what to do."""


class PrometheusUnreachable(PrometheusError):
    """No answer: connection refused, DNS, timeouts, or 5xx after the retry policy's last attempt."""


class BadQuery(PrometheusError):
    """Prometheus refused the PromQL (HTTP 400 `bad_data`, or 422 `execution`); `error_type` says which."""

    def __init__(self, message: str, *, error_type: str, query: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.query = query


class NoSeries(PrometheusError):
    """The query parsed and ran but matched no series: the metric is not scraped (yet), or the labels differ."""

    def __init__(self, message: str, *, query: str) -> None:
        super().__init__(message)
        self.query = query


@dataclasses.dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and value."""

    labels: Mapping[str, str]
    value: float


def check_duration(window: str) -> str:
    """`window` when it is a Prometheus duration such as `1d`; ValueError naming it otherwise."""
    if not _DURATION.match(window):
        raise ValueError(f"window {window!r} is not a Prometheus duration such as 1d, 7d, 30d or 3600s")
    return window


def parse_vector(body: Mapping[str, Any]) -> list[Sample]:
    """The samples of a successful `/api/v1/query` answer; a scalar becomes one unlabelled sample.

    NaN and infinite values are dropped (a division by a zero request count), never read as a figure."""
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        values: list[tuple[Mapping[str, str], Any]] = [({}, result[1])]
    elif kind == "vector" and isinstance(result, list):
        values = [(dict(item.get("metric") or {}), item["value"][1]) for item in result]
    else:
        raise PrometheusError(f"expected an instant vector, Prometheus answered a {kind or 'malformed'} result")
    samples = [Sample(labels, float(value)) for labels, value in values]
    return [s for s in samples if math.isfinite(s.value)]


def read_bearer_token(env: Mapping[str, str], *, path: str | None = None) -> str | None:
    """The bearer token for Prometheus: the file `path` (default $ASSAY_PROMETHEUS_TOKEN_FILE, e.g. a mounted
    Secret) or $ASSAY_PROMETHEUS_TOKEN; None when neither is set. The token is never part of a message."""
    path = path or env.get(ENV_TOKEN_FILE)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as exc:
            raise PrometheusError(f"cannot read the token file {path}: {exc.strerror}") from None
    return env.get(ENV_TOKEN) or None


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the operator reads spend: a Prometheus URL and where its bearer token is (a file, or the env).

    The token itself is read when a client is made (a rotated Secret file is picked up), never stored here."""

    url: str
    token_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings | None:
        """From ASSAY_PROMETHEUS_URL and ASSAY_PROMETHEUS_TOKEN_FILE (what the chart sets); None without a URL."""
        url = env.get(ENV_URL, "").strip()
        return cls(url, env.get(ENV_TOKEN_FILE) or None) if url else None

    @property
    def host(self) -> str:
        """The URL's host and port, for conditions and logs."""
        parts = urllib.parse.urlsplit(self.url)
        return parts.netloc.rsplit("@", 1)[-1] or self.url

    def client(self, env: Mapping[str, str]) -> PrometheusClient:
        """A client with the token read now (raises PrometheusError when its file cannot be read)."""
        return PrometheusClient(self.url, bearer_token=read_bearer_token(env, path=self.token_file))


class Querier(Protocol):
    """What reads spend: `PrometheusClient`, or `reading.Batch` (each distinct query once)."""

    def query(self, expr: str, *, at: float | None = None) -> list[Sample]: ...


class PrometheusClient:
    """Instant queries against one Prometheus: `PrometheusClient(url, bearer_token=...).query(expr)`.

    The bearer token is sent in a header and never appears in a message."""

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        timeout: float = 30.0,
        retry: httpclient.RetryPolicy | None = None,
        policy: egress.EgressPolicy | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._shown = egress.redact(self.url)
        self._retry = retry or httpclient.RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=2.0)
        self._client = httpclient.make_client(
            base_url=self.url, bearer_token=bearer_token, timeout=timeout, policy=policy
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, expr: str, *, at: float | None = None) -> list[Sample]:
        """The instant vector `expr` evaluates to at Unix time `at` (default: now). May be empty.

        Raises PrometheusUnreachable, BadQuery or PrometheusError; never returns a partial answer."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        answers: list[httpx.Response] = []

        def send() -> httpx.Response:
            answers.append(self._client.get(QUERY_PATH, params=params))
            return answers[-1]

        what = f"Prometheus {self._shown}{QUERY_PATH}"
        try:
            response = httpclient.send_with_retry_sync(send, policy=self._retry, what=what)
        except egress.EgressDenied as exc:
            raise PrometheusUnreachable(f"{what}: {exc}") from None
        except httpclient.CallFailed as exc:
            if exc.status in (400, 422) and answers:
                raise _bad_query(answers[-1], expr) from None
            if exc.status in (401, 403):
                raise PrometheusError(f"{what}: HTTP {exc.status}: check the bearer token or its file") from None
            raise PrometheusUnreachable(f"{exc}; is Prometheus running at {self._shown}?") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(f"{what}: the answer is not JSON; is {self._shown} a Prometheus?") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{what}: {body.get('errorType')}: {body.get('error')}")
        return parse_vector(body)

    def query_series(self, expr: str, *, at: float | None = None) -> list[Sample]:
        """`query`, raising NoSeries when the answer is empty."""
        samples = self.query(expr, at=at)
        if not samples:
            raise NoSeries(
                f"no series for {expr!r} at {self._shown}: is the gateway scraped, and do its metric and labels match?",
                query=expr,
            )
        return samples


def _bad_query(response: httpx.Response, expr: str) -> BadQuery:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error_type = str(body.get("errorType") or f"HTTP {response.status_code}")
    reason = str(body.get("error") or response.reason_phrase)
    return BadQuery(f"Prometheus refused the query {expr!r}: {error_type}: {reason}", error_type=error_type, query=expr)

"""LiteLLM through its admin API (a proxy with a database): switch `model_group_alias[<route>]` live, no restart.

The calls, as LiteLLM 1.108.7 serves them (litellm/proxy/proxy_server.py `update_config`,
litellm/proxy/management_endpoints/router_settings_endpoints.py `get_router_settings`), all with the master key
as a bearer token:

- `GET /router/settings` -> `{"current_values": {"model_group_alias": {...}, ...}, "source": {...}, "fields": [...]}`:
  the live alias map.
- `POST /config/update` with `{"router_settings": {"model_group_alias": {...}}}`: LiteLLM merges router_settings
  per top-level key, so the WHOLE alias map is sent (read first, change one entry). Answers 400 "No DB Connected"
  without a database, and 400 when the config file itself sets model_group_alias (the file then owns it).
- `GET /v1/models` -> `{"data": [{"id": ...}]}`: model groups and aliases, to refuse a switch to a group that does
  not exist.

LiteLLM has no compare-and-swap: between assay's read and its write another writer's change to a *different*
alias could be lost. assay narrows the window to one round trip and reads the result back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from assay import egress, httpclient
from assay.gateways import interface, litellm_config

KIND = "LiteLLMAdminAPI"
SETTINGS_PATH = "/router/settings"
UPDATE_PATH = "/config/update"
MODELS_PATH = "/v1/models"
# Few, quick attempts: the operator retries a retryable GatewayError with its own, longer backoff.
DEFAULT_RETRY = httpclient.RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0)


class LiteLLMAdminGateway:
    """The alias of one route in a LiteLLM proxy's database-backed router settings."""

    kind = KIND
    restarts_gateway = False
    supports_weights = False

    def __init__(
        self,
        *,
        url: str,
        route: str,
        master_key: Callable[[], str],
        key_source: str = "the master key",
        retry: httpclient.RetryPolicy = DEFAULT_RETRY,
        timeout: float = 10.0,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._url = url.rstrip("/")
        self._route = route
        self._master_key = master_key
        self._key_source = key_source
        self._retry = retry
        self._timeout = timeout
        self._sleep = sleep
        self.location = f"LiteLLM {self._url} {litellm_config.ALIAS_FIELD}.{route}"

    def describe(self) -> str:
        return f"{KIND}: alias {self._route!r} at {self._url} (live, through /config/update)"

    def read(self) -> interface.RouteSnapshot:
        with self._client() as http:
            return self._snapshot(self._aliases(http))

    def write(
        self, target: interface.RouteTarget, *, expected: interface.RouteSnapshot | None
    ) -> interface.RouteSnapshot:
        model_group = litellm_config.target_model_group(target, gateway=self.describe())
        with self._client() as http:
            aliases = self._aliases(http)
            live = self._snapshot(aliases)
            interface.check_expected(live, expected)
            current = live.entries["alias"]
            entry: litellm_config.AliasEntry = (
                {**current, "model": model_group} if isinstance(current, dict) else model_group
            )
            if entry == current:
                return live
            self._check_model_group(http, model_group, aliases)
            return self._put(http, aliases, entry)

    def restore(self, snapshot: interface.RouteSnapshot) -> interface.RouteSnapshot:
        interface.check_same_route(KIND, self.location, snapshot)
        raw = snapshot.entries.get("alias")
        with interface.about(f"snapshot of {self.location}"):
            entry = None if raw is None else litellm_config.check_entry(self._route, raw)
        with self._client() as http:
            aliases = self._aliases(http)
            if aliases.get(self._route) == entry:
                return self._snapshot(aliases)
            return self._put(http, aliases, entry)

    def _put(
        self, http: httpx.Client, aliases: dict[str, Any], entry: litellm_config.AliasEntry | None
    ) -> interface.RouteSnapshot:
        updated = {name: value for name, value in aliases.items() if name != self._route}
        if entry is not None:
            updated[self._route] = entry
        self._call(http, "POST", UPDATE_PATH, json={"router_settings": {litellm_config.MODEL_GROUP_ALIAS: updated}})
        after = self._snapshot(self._aliases(http))
        if after.entries["alias"] != entry:
            raise interface.WriteNotApplied(
                f"{self.location}: LiteLLM accepted the update but still reports {after.entries['alias']!r} "
                f"instead of {entry!r}"
            )
        return after

    def _check_model_group(self, http: httpx.Client, model_group: str, aliases: dict[str, Any]) -> None:
        listed = self._call(http, "GET", MODELS_PATH).get("data")
        ids = [item.get("id") for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []
        groups = [name for name in ids if isinstance(name, str) and name not in aliases]
        if model_group not in groups:
            raise interface.ModelGroupNotFound(
                f"{self.location}: model group {model_group!r} is not served by the proxy (model groups: "
                f"{', '.join(groups) or 'none'}); add it to the proxy's models first"
            )

    def _aliases(self, http: httpx.Client) -> dict[str, Any]:
        settings = self._call(http, "GET", SETTINGS_PATH)
        current = settings.get("current_values")
        if not isinstance(current, dict):
            raise interface.InvalidGatewayConfig(
                f"{self._url}{SETTINGS_PATH} answered without current_values: is this a LiteLLM proxy >= 1.80?"
            )
        aliases = current.get(litellm_config.MODEL_GROUP_ALIAS) or {}
        if not isinstance(aliases, dict):
            raise interface.InvalidGatewayConfig(
                f"{self._url}{SETTINGS_PATH}: current_values.model_group_alias is not a mapping"
            )
        return dict(aliases)

    def _snapshot(self, aliases: dict[str, Any]) -> interface.RouteSnapshot:
        raw = aliases.get(self._route)
        with interface.about(self.location):
            entry = None if raw is None else litellm_config.check_entry(self._route, raw)
        return interface.RouteSnapshot(
            kind=KIND, location=self.location, entries={"alias": entry}, model=litellm_config.alias_model(entry)
        )

    def _client(self) -> httpx.Client:
        return httpclient.make_client(base_url=self._url, bearer_token=self._master_key(), timeout=self._timeout)

    def _call(self, http: httpx.Client, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        last: list[httpx.Response] = []

        def send() -> httpx.Response:
            response = http.request(method, path, json=json)
            last[:] = [response]
            return response

        what = f"LiteLLM {method} {self._url}{path}"
        try:
            response = httpclient.send_with_retry_sync(send, policy=self._retry, what=what, sleep=self._sleep)
        except httpclient.CallFailed as exc:
            raise self._failure(exc, last[0] if last else None, what) from exc
        except egress.EgressDenied as exc:  # the master key is never sent where the egress rule forbids
            raise interface.GatewayRejected(f"spec.gateway.url: {exc}") from None
        try:
            body = response.json()
        except ValueError as exc:
            raise interface.GatewayRejected(
                f"{what} answered {response.status_code} with a body that is not JSON"
            ) from exc
        if not isinstance(body, dict):
            raise interface.GatewayRejected(f"{what} answered {response.status_code} with JSON that is not an object")
        return body

    def _failure(
        self, exc: httpclient.CallFailed, response: httpx.Response | None, what: str
    ) -> interface.GatewayError:
        detail = _error_message(response) if response is not None and exc.status == response.status_code else ""
        said = f": {detail}" if detail else ""
        if exc.status is None:
            return interface.GatewayUnreachable(f"{exc}")
        if exc.status in (401, 403):
            return interface.GatewayForbidden(
                f"{what} refused {self._key_source} (HTTP {exc.status}){said}; it must be the proxy's master key"
            )
        if "no db connected" in detail.lower() or "no connected db" in detail.lower():
            return interface.GatewayRejected(
                f"{what}: LiteLLM has no database{said}; the admin API needs a proxy with DATABASE_URL set. "
                "Without one use gateway kind LiteLLMConfigMap"
            )
        if "set in the config file" in detail:
            return interface.GatewayRejected(
                f"{what}{said}; remove router_settings.model_group_alias from the proxy's config.yaml so the "
                "database owns the aliases"
            )
        if exc.status in httpclient.RETRYABLE_STATUS:
            return interface.GatewayUnreachable(f"{what}: HTTP {exc.status}{said}")
        return interface.GatewayRejected(f"{what}: HTTP {exc.status}{said}")


def _error_message(response: httpx.Response) -> str:
    """LiteLLM's error text: {"error": {"message": ...}} for ProxyException, {"detail": ...} for FastAPI's."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            return str(error.get("message") or error.get("error") or error)[:500]
        if error is not None:
            return str(error)[:500]
    return str(body)[:500]

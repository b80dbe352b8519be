"""A recorded-contract stand-in for the LiteLLM proxy's admin API, used where a real proxy cannot serve it.

A real LiteLLM proxy answers `POST /config/update` only with a database (Postgres through Prisma, whose query
engine is downloaded at `prisma generate` time and cannot be fetched here), so the admin adapter's write path is
tested against this server. It implements exactly the request and response shapes of LiteLLM 1.108.7 for the
three endpoints the adapter calls, taken from its source and from a real proxy's answers recorded on loopback:

- litellm/proxy/management_endpoints/router_settings_endpoints.py `get_router_settings`:
  `GET /router/settings` -> {fields, current_values, routing_strategy_descriptions, routing_group_strategies,
  source}; current_values.model_group_alias is the live map, source.model_group_alias one of config|db|default.
- litellm/proxy/proxy_server.py `update_config`: `POST /config/update` {"router_settings": {...}} checks
  unknown router settings (400), then the database (400 "Authentication Error, No DB Connected"), then keys the
  config file owns (400 "... is set in the config file and cannot be changed here ..."), then merges
  router_settings per top-level key: {**stored, **sent}; answers {"message": "Config updated successfully"}.
- `GET /v1/models` -> {"data": [{"id", "object": "model", "created", "owned_by"}], "object": "list"}, listing the
  aliases and the model groups.
- Errors are ProxyException bodies {"error": {"message", "type", "param", "code"}}; no bearer token -> 401
  "Authentication Error, No api key passed in."; a wrong token -> 401 with a database, 400 "No connected db."
  without one (as recorded).

tests/contract/test_litellm_admin_contract.py checks the GET shape and the no-database answer against the real
proxy when hack/litellm.sh has installed it, so the stand-in cannot drift from what it stands for unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from typing import Any

from aiohttp import web

ROUTER_SETTINGS_KEYS = frozenset(
    {
        "routing_groups",
        "routing_strategy",
        "routing_strategy_args",
        "num_retries",
        "timeout",
        "stream_timeout",
        "max_fallbacks",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "allowed_fails",
        "cooldown_time",
        "retry_after",
        "retry_policy",
        "model_group_alias",
        "enable_pre_call_checks",
        "default_litellm_params",
        "set_verbose",
        "default_max_parallel_requests",
        "enable_tag_filtering",
        "tag_filtering_match_any",
        "disable_cooldowns",
    }
)


@dataclasses.dataclass
class ProxyState:
    """What the stand-in proxy holds. Tests edit it to play other writers (a hand edit through the UI)."""

    master_key: str
    model_groups: list[str]
    database: bool = True
    config_router_settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # from config.yaml
    db_router_settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # written by /config/update
    fail_next: list[int] = dataclasses.field(default_factory=list)  # statuses to answer first, one per request
    requests: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)

    def aliases(self) -> dict[str, Any]:
        owned = self.config_router_settings.get("model_group_alias")
        return dict(owned if owned is not None else self.db_router_settings.get("model_group_alias") or {})


def _error(status: int, message: str, *, type_: str = "auth_error", param: Any = "None") -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": str(status)}}
    return web.json_response(body, status=status)


class LiteLLMAdminContract:
    """The stand-in on 127.0.0.1, served from a background thread: `with LiteLLMAdminContract(state) as p: p.url`."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="litellm-admin-contract", daemon=True)
        self._runner: web.AppRunner | None = None
        with contextlib.closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiteLLMAdminContract:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/router/settings", self._router_settings)
        app.router.add_post("/config/update", self._config_update)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.state.requests.append((request.method, request.path, body))
        if self.state.fail_next:
            status = self.state.fail_next.pop(0)
            return _error(status, f"injected failure {status}", type_="internal_server_error")
        authorization = request.headers.get("Authorization", "")
        if not authorization:
            return _error(401, "Authentication Error, No api key passed in.")
        if authorization != f"Bearer {self.state.master_key}":
            if not self.state.database:
                return _error(400, "No connected db.", type_="no_db_connection", param=None)
            return _error(401, "Authentication Error, Invalid proxy server token passed.")
        response: web.StreamResponse = await handler(request)
        return response

    async def _router_settings(self, request: web.Request) -> web.Response:
        aliases = self.state.aliases()
        if "model_group_alias" in self.state.config_router_settings:
            source = "config"
        elif "model_group_alias" in self.state.db_router_settings:
            source = "db"
        else:
            source = "default"
        current = {
            "routing_strategy": "simple-shuffle",
            "num_retries": 0,
            **self.state.db_router_settings,
            **self.state.config_router_settings,
            "model_group_alias": aliases,
        }
        field = {
            "field_name": "model_group_alias",
            "field_type": "Dictionary",
            "field_value": aliases,
            "field_description": "Aliases for model groups",
            "field_default": {},
            "options": None,
            "ui_field_name": "Model Group Alias",
            "link": None,
        }
        return web.json_response(
            {
                "fields": [field],
                "current_values": current,
                "routing_strategy_descriptions": {},
                "routing_group_strategies": ["simple-shuffle", "priority"],
                "source": {"model_group_alias": source},
            }
        )

    async def _config_update(self, request: web.Request) -> web.Response:
        body = await request.json()
        router_settings = body.get("router_settings")
        if isinstance(router_settings, dict):
            unsupported = sorted(set(router_settings) - ROUTER_SETTINGS_KEYS)
            if unsupported:
                detail = {
                    "error": f"Unsupported router settings: {', '.join(unsupported)} are not valid router settings"
                }
                return _error(400, str(detail))
        if not self.state.database:
            return _error(400, "Authentication Error, No DB Connected")
        if isinstance(router_settings, dict):
            owned = sorted(set(router_settings) & set(self.state.config_router_settings))
            if owned:
                detail = {
                    "error": f"router_settings key '{owned[0]}' is set in the config file and cannot be changed here.",
                    "keys": owned,
                    "section": "router_settings",
                    "stored_database_values_ignored": [],
                    "resolution": (
                        "edit config.yaml to change it, or remove it from the file to let the database own it"
                    ),
                }
                return _error(400, str(detail))
            sent = {key: value for key, value in router_settings.items() if value is not None}
            self.state.db_router_settings = {**self.state.db_router_settings, **sent}
        return web.json_response({"message": "Config updated successfully"})

    async def _models(self, request: web.Request) -> web.Response:
        ids = [*self.state.aliases(), *self.state.model_groups]
        data = [{"id": name, "object": "model", "created": 1677610602, "owned_by": "openai"} for name in ids]
        return web.json_response({"data": data, "object": "list"})


@contextlib.contextmanager
def running(state: ProxyState) -> Iterator[LiteLLMAdminContract]:
    with LiteLLMAdminContract(state) as proxy:
        yield proxy

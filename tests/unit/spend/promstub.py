"""A stand-in Prometheus on loopback for the spend unit tests: it answers /api/v1/query from a table the test
fills (expression -> status and body), the way the real one does, and records what it was asked."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any


def vector(*samples: tuple[dict[str, str], float]) -> dict[str, Any]:
    """A successful instant-vector answer."""
    result = [{"metric": labels, "value": [1700000000.0, str(value)]} for labels, value in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@dataclasses.dataclass
class FakePrometheus:
    url: str = ""
    answers: dict[str, tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    default: tuple[int, dict[str, Any]] = (200, vector())
    asked: list[dict[str, str]] = dataclasses.field(default_factory=list)
    headers: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def answer(self, expr: str, body: dict[str, Any], *, status: int = 200) -> None:
        self.answers[expr] = (status, body)


@contextlib.contextmanager
def serving() -> Iterator[FakePrometheus]:
    """A FakePrometheus answering on a free loopback port until the block ends."""
    fake = FakePrometheus()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(parts.query))
            fake.asked.append(params)
            fake.headers.append(dict(self.headers))
            status, body = fake.answers.get(params.get("query", ""), fake.default)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()

"""The spend unit tests' stand-in Prometheus (promstub)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from promstub import FakePrometheus, serving


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    with serving() as fake:
        yield fake

"""Kubernetes Events with distinct reasons. Messages never carry prompt or answer text, nor secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf


def normal(body: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(dict(body), type="Normal", reason=reason, message=message)  # type: ignore[arg-type]


def warning(body: Mapping[str, Any], reason: str, message: str) -> None:
    kopf.event(dict(body), type="Warning", reason=reason, message=message)  # type: ignore[arg-type]

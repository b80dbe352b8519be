"""Status writes: compute the desired status, compare, patch only what changed."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from typing import Any

from assay import kube

_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def lock_for(uid: str) -> threading.Lock:
    """One lock per object: change handlers and timers of the same object never interleave."""
    with _locks_guard:
        return _locks[uid]


def changed_fields(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning `current` into `desired`: changed fields, recursively into
    objects, and None for every field `desired` no longer has (a merge patch deletes those; leaving them out
    would keep stale values, e.g. a rolled-back route still naming the candidate). Lists are replaced whole."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if old == value:
            continue
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            patch[key] = changed_fields(old, value)
        else:
            patch[key] = value
    patch.update({key: None for key in current if key not in desired and current[key] is not None})
    return patch


def write(kind: str, namespace: str, name: str, current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Merge-patch the fields that differ; True if anything was written."""
    patch = changed_fields(current, desired)
    if not patch:
        return False
    kube.patch_status(kind, namespace, name, patch)
    return True

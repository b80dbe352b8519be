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
    """The top-level status fields whose desired value differs from the current one; a field the desired
    status no longer has is set to None, which a merge patch deletes."""
    patch = {key: value for key, value in desired.items() if current.get(key) != value}
    patch.update({key: None for key in current if key not in desired and current[key] is not None})
    return patch


def write(kind: str, namespace: str, name: str, current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Merge-patch the fields that differ; True if anything was written."""
    patch = changed_fields(current, desired)
    if not patch:
        return False
    kube.patch_status(kind, namespace, name, patch)
    return True

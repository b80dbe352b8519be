"""Status writes and fresh reads: the one place assay reads its objects fresh, and writes their status guarded.

Every status write carries the resourceVersion it was computed from (a merge-patch precondition): a write based on
a stale read, by this process or another replica, fails with a conflict instead of overwriting newer state, and
the caller re-reads and recomputes. Within one process, changes to one object are also serialized by a lock per
object (handlers, timers, the alert path and the route writer), which is never awaited without a timeout.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from assay import kube

LOCK_TIMEOUT_SECONDS = 60.0

_locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
_locks_guard = threading.Lock()


class LockTimeout(RuntimeError):
    """The object's lock was held longer than LOCK_TIMEOUT_SECONDS: a stuck call holds it; retry later."""


class Conflict(RuntimeError):
    """The object changed since it was read (409): re-read and recompute."""


@contextlib.contextmanager
def locked(uid: str, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the object's lock; raise LockTimeout rather than wait for ever."""
    with _locks_guard:
        lock = _locks[uid]
    if not lock.acquire(timeout=timeout):
        raise LockTimeout(f"object {uid} stayed locked for {timeout:.0f}s")
    try:
        yield
    finally:
        lock.release()


def fresh(kind: str, namespace: str, name: str, uid: str | None) -> dict[str, Any] | None:
    """The object as the API has it now, or None if it is gone or was replaced by a namesake (another uid: a
    deleted and re-created object is a new object)."""
    try:
        obj = kube.get_object(kind, namespace, name)
    except Exception as exc:
        if kube.is_not_found(exc):
            return None
        raise
    if uid is not None and obj["metadata"].get("uid") != uid:
        return None
    return obj


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


def write(
    kind: str,
    namespace: str,
    name: str,
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    *,
    resource_version: str | None,
) -> str | None:
    """Merge-patch the fields that differ, guarded by `resource_version` (None: unguarded, for objects assay
    alone writes). Returns the new resourceVersion, or None when nothing had to be written; raises Conflict."""
    patch = changed_fields(current, desired)
    if not patch:
        return None
    try:
        result = kube.patch_status(kind, namespace, name, patch, resource_version=resource_version)
    except Exception as exc:
        if kube.is_conflict(exc):
            raise Conflict(f"{kind} {namespace}/{name} changed since it was read") from exc
        raise
    return str(result.get("metadata", {}).get("resourceVersion") or "") or None

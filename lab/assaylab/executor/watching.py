"""Watching pods: list, then watch from the list's resourceVersion, and list again when the watch expires or
fails, so that no change is missed for good. What is seen goes to the executor's callbacks."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

from assaylab.executor import errors, pod_run

log = logging.getLogger("assaylab.executor")

PodSeen = Callable[[dict[str, Any], bool], None]  # (pod, gone)
ListingSeen = Callable[[str | None, list[dict[str, Any]]], None]  # (scope, every pod listed)


class _WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def watch_pods(
    core: client.CoreV1Api,
    scope: str | None,
    *,
    selector: str,
    stopping: threading.Event,
    on_pod: PodSeen,
    on_listing: ListingSeen,
) -> None:
    """Feed every pod matching `selector` in namespace `scope` (None: all) to the callbacks until `stopping`
    is set; runs in a thread of its own."""
    if scope is None:
        function: Any = core.list_pod_for_all_namespaces
        args: tuple[str, ...] = ()
    else:
        function, args = core.list_namespaced_pod, (scope,)
    where = scope or "all namespaces"
    while not stopping.is_set():
        try:
            listing = pod_run.response_json(function(*args, label_selector=selector, _preload_content=False))
            on_listing(scope, listing["items"])
            version = listing["metadata"]["resourceVersion"]
            while not stopping.is_set():
                version = _watch_once(function, args, version, selector=selector, on_pod=on_pod)
        except _WatchExpired:
            log.debug("watch of pods in %s expired; listing again", where)
        except Exception as exc:  # the API server may be restarting: list again after a pause
            if not stopping.is_set():
                log.warning("watching pods in %s failed: %s; listing again", where, exc)
                stopping.wait(1.0)


def _watch_once(function: Any, args: tuple[str, ...], version: str, *, selector: str, on_pod: PodSeen) -> str:
    """One watch request (the server ends it after a few seconds, so a stop is noticed); returns the
    resourceVersion to continue from."""
    response = function(
        *args,
        label_selector=selector,
        watch=True,
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
        _request_timeout=30,
        _preload_content=False,
    )
    try:
        for line in watch.watch.iter_resp_lines(response):
            if not line.strip():
                continue
            event = json.loads(line)
            obj = event["object"]
            if event["type"] == "ERROR":
                if obj.get("code") == 410:
                    raise _WatchExpired()
                raise errors.ExecutorError(f"watch error: {obj.get('message')}")
            version = obj["metadata"].get("resourceVersion", version)
            if event["type"] in ("ADDED", "MODIFIED"):
                on_pod(obj, False)
            elif event["type"] == "DELETED":
                on_pod(obj, True)
    finally:
        response.close()
        response.release_conn()
    return version

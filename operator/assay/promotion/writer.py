"""The one route writer: one serialized worker per gateway location.

A location is one thing that holds routes and is written whole or guarded as a whole: a LiteLLM proxy (its alias
map is read and posted back whole), a ConfigMap, an AIGatewayRoute or HTTPRoute object. Every policy whose route
lives there is synced by the same worker thread, one at a time, so two policies never interleave a
read-modify-write on the same location and never undo each other.

The queue holds policies, not requests: asking for a policy that is already queued only moves it earlier, so a
flood of alerts or reconciles for one policy makes one sync. The job (the I/O of one sync) is given by the
caller; it tells when the policy needs the worker again (a canary soak, a backoff, a re-check).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("assay.promotion")


@dataclasses.dataclass(frozen=True)
class PolicyRef:
    namespace: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one sync of a policy did. `intent` is the id of the intent it worked on (or None); `done` says the
    intent is finished (the route reads back as wanted); `error` the failure of this attempt; `again_in` when the
    policy needs the writer again (seconds), `location` where (it moves after a spec.gateway change)."""

    intent: str | None = None
    done: bool = False
    error: str | None = None
    again_in: float | None = None
    location: str | None = None


Job = Callable[[PolicyRef, bool], Outcome]


@dataclasses.dataclass
class _Result:
    seq: int = 0
    outcome: Outcome | None = None
    # The last outcome about each recent intent, with its sequence number: a later sync about something else
    # (a check of the settled route) must not hide that an intent finished.
    by_intent: dict[str, tuple[int, Outcome]] = dataclasses.field(default_factory=dict)


class RouteWriter:
    """Workers keyed by location, created on first use; `job(ref, urgent)` does one policy's sync."""

    def __init__(self, job: Job, *, idle_exit_seconds: float = 300.0) -> None:
        self._job = job
        self._lock = threading.Condition()
        self._queues: dict[str, dict[str, tuple[float, PolicyRef, bool]]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._results: dict[str, _Result] = {}
        self._stopped = False
        self._idle_exit = idle_exit_seconds

    def submit(self, location: str, ref: PolicyRef, *, delay: float = 0.0, urgent: bool = False) -> int:
        """Queue a sync of `ref` at `location` after `delay` seconds (earlier if already queued); returns the
        sequence number of the last finished sync of that policy, for `wait`."""
        due = time.monotonic() + max(0.0, delay)
        with self._lock:
            if self._stopped:
                return self._results.get(ref.uid, _Result()).seq
            queue = self._queues.setdefault(location, {})
            queued = queue.get(ref.uid)
            if queued is None or due < queued[0] or (urgent and not queued[2]):
                queue[ref.uid] = (min(due, queued[0]) if queued else due, ref, urgent or bool(queued and queued[2]))
            if location not in self._workers or not self._workers[location].is_alive():
                worker = threading.Thread(target=self._run, args=(location,), name=f"route-writer {location}"[:60])
                worker.daemon = True
                self._workers[location] = worker
                worker.start()
            self._lock.notify_all()
            return self._results.get(ref.uid, _Result()).seq

    def wait(self, uid: str, *, after: int, intent: str | None, timeout: float) -> Outcome | None:
        """The outcome of the first sync of `uid` finished after sequence `after` that worked on `intent` (with
        intent None: any sync), or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                result = self._results.get(uid)
                if result is not None:
                    if intent is None and result.seq > after and result.outcome is not None:
                        return result.outcome
                    found = result.by_intent.get(intent) if intent is not None else None
                    if found is not None and found[0] > after:
                        return found[1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def forget(self, uid: str) -> None:
        """Drop a policy (deleted): nothing queued, no result kept."""
        with self._lock:
            for queue in self._queues.values():
                queue.pop(uid, None)
            self._results.pop(uid, None)

    def knows(self, uid: str) -> bool:
        """Whether the policy is queued or was synced by this process (it then re-checks on its own cadence)."""
        with self._lock:
            return uid in self._results or any(uid in queue for queue in self._queues.values())

    def queued(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def _next(self, location: str) -> tuple[PolicyRef, bool] | None:
        """The next due policy at `location`, waiting for one; None when stopped or idle for long."""
        idle_since = time.monotonic()
        with self._lock:
            while not self._stopped:
                queue = self._queues.get(location) or {}
                now = time.monotonic()
                if queue:
                    uid, (due, ref, urgent) = min(queue.items(), key=lambda item: item[1][0])
                    if due <= now:
                        del queue[uid]
                        return ref, urgent
                    self._lock.wait(due - now)
                    idle_since = time.monotonic()
                    continue
                if now - idle_since >= self._idle_exit:
                    self._workers.pop(location, None)
                    return None
                self._lock.wait(self._idle_exit)
        return None

    def _run(self, location: str) -> None:
        while True:
            item = self._next(location)
            if item is None:
                return
            ref, urgent = item
            try:
                outcome = self._job(ref, urgent)
            except Exception as exc:  # the worker must outlive any one policy's failure
                logger.exception("route sync of %s/%s failed unexpectedly", ref.namespace, ref.name)
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}", again_in=5.0)
            with self._lock:
                result = self._results.setdefault(ref.uid, _Result())
                result.seq += 1
                result.outcome = outcome
                if outcome.intent is not None:
                    result.by_intent[outcome.intent] = (result.seq, outcome)
                    while len(result.by_intent) > 8:
                        result.by_intent.pop(next(iter(result.by_intent)))
                self._lock.notify_all()
            if outcome.again_in is not None:
                self.submit(outcome.location or location, ref, delay=outcome.again_in)

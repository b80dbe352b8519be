"""The one route writer: syncs serialized per gateway location, by a bounded pool of worker threads.

A location is one thing that holds routes and is written whole or guarded as a whole: a LiteLLM proxy (its alias
map is read and posted back whole), a ConfigMap, an AIGatewayRoute or HTTPRoute object. Every policy whose route
lives there is synced one at a time (a worker holds the location while it syncs one of its policies), so two
policies never interleave a read-modify-write on the same location and never undo each other.

The queue holds policies, not requests: asking for a policy that is already queued only moves it earlier, so a
flood of alerts or reconciles for one policy makes one sync. The job (the I/O of one sync) is given by the
caller; it tells when the policy needs the worker again (a canary soak, a backoff, a re-check).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
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
    # Work that needs no hold on the location (posting Events): run after the location is released, before the
    # outcome is published, so the next policy there does not wait for it and waiters still see it done.
    then: Callable[[], None] | None = None


Job = Callable[[PolicyRef, bool], Outcome]


@dataclasses.dataclass
class _Result:
    seq: int = 0
    outcome: Outcome | None = None
    # The last outcome about each recent intent, with its sequence number: a later sync about something else
    # (a check of the settled route) must not hide that an intent finished.
    by_intent: dict[str, tuple[int, Outcome]] = dataclasses.field(default_factory=dict)


class RouteWriter:
    """A bounded pool of worker threads over per-location queues: at most one sync per location at a time (the
    serialization that keeps policies from undoing each other), at most `workers` locations at once (so a
    thousand HTTPRoutes do not make a thousand threads). `job(ref, urgent)` does one policy's sync."""

    def __init__(self, job: Job, *, workers: int = 8) -> None:
        self._job = job
        self._lock = threading.Condition()
        self._queues: dict[str, dict[str, tuple[float, PolicyRef, bool]]] = {}
        # (rank, due, tie-breaker, location, uid), lazily invalidated: an entry counts only while it matches the
        # queue. Rank 0 is urgent (a rollback), 1 the rest: a due rollback goes before a due routine check.
        self._heap: list[tuple[int, float, int, str, str]] = []
        self._pushed = itertools.count()
        self._busy: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._max_threads = max(1, workers)
        self._results: dict[str, _Result] = {}
        self._stopped = False

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
                when = min(due, queued[0]) if queued else due
                is_urgent = urgent or bool(queued and queued[2])
                queue[ref.uid] = (when, ref, is_urgent)
                heapq.heappush(self._heap, (0 if is_urgent else 1, when, next(self._pushed), location, ref.uid))
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) < self._max_threads:
                worker = threading.Thread(target=self._run, name=f"route-writer-{len(self._threads)}", daemon=True)
                self._threads.append(worker)
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

    def threads(self) -> int:
        with self._lock:
            return sum(1 for t in self._threads if t.is_alive())

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def _next(self) -> tuple[str, PolicyRef, bool] | None:
        """The due policy at a location no other worker holds, urgent ones first, then the earliest; waiting for
        one; None when stopped. The location is marked busy until `_done`."""
        with self._lock:
            while not self._stopped:
                now = time.monotonic()
                held: list[tuple[int, float, int, str, str]] = []
                found = None
                while self._heap:
                    rank, due, _, location, uid = self._heap[0]
                    entry = self._queues.get(location, {}).get(uid)
                    if entry is None or entry[0] != due or entry[2] != (rank == 0):
                        heapq.heappop(self._heap)  # stale: synced, forgotten, moved earlier or made urgent since
                    elif location in self._busy or (due > now and rank == 0):
                        held.append(heapq.heappop(self._heap))  # an urgent one not due yet must not hide the rest
                    elif due <= now:
                        heapq.heappop(self._heap)
                        found = (location, uid, entry)
                        break
                    else:
                        break
                for item in held:
                    heapq.heappush(self._heap, item)
                if found is not None:
                    location, uid, (_, ref, urgent) = found
                    del self._queues[location][uid]
                    if not self._queues[location]:
                        del self._queues[location]
                    self._busy.add(location)
                    return location, ref, urgent
                free = [entry[1] for entry in self._heap if entry[3] not in self._busy]
                self._lock.wait(max(0.0, min(free) - now) if free else None)
        return None

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            location, ref, urgent = item
            try:
                outcome = self._job(ref, urgent)
            except Exception as exc:  # the worker must outlive any one policy's failure
                logger.exception("route sync of %s/%s failed unexpectedly", ref.namespace, ref.name)
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}", again_in=5.0)
            with self._lock:
                self._busy.discard(location)
                self._lock.notify_all()
            if outcome.then is not None:
                try:
                    outcome.then()
                except Exception:
                    logger.exception("after the route sync of %s/%s", ref.namespace, ref.name)
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

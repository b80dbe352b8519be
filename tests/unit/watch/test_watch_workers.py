"""The watch's judging workers: samples of different routes are judged at the same time, one route's samples
one after another (so its daily caps see every sample before the next)."""

from __future__ import annotations

import asyncio
import collections

from assay.controllers import handle_watch
from assay.watch import judging


def sample(policy: str) -> judging.Sample:
    return judging.Sample(namespace="shop", policy=policy, group="g", messages=[], response="")


def test_routes_are_judged_in_parallel_and_each_route_in_turn(monkeypatch):
    running: collections.Counter[str] = collections.Counter()
    most_at_once = {"all": 0, "per_route": 0}
    done: list[str] = []

    async def judging_slowly(found: judging.Sample, *, seq: int) -> None:
        running[found.policy] += 1
        most_at_once["all"] = max(most_at_once["all"], sum(running.values()))
        most_at_once["per_route"] = max(most_at_once["per_route"], running[found.policy])
        await asyncio.sleep(0.05)
        running[found.policy] -= 1
        done.append(found.policy)

    monkeypatch.setattr(handle_watch, "process", judging_slowly)

    async def scenario() -> None:
        worker = handle_watch.Worker(workers=8)
        worker.start()
        for index in range(24):
            worker._queue.put_nowait(sample(f"route-{index % 6}"))
        await asyncio.wait_for(worker._queue.join(), timeout=30)
        await worker.stop()

    asyncio.run(scenario())
    assert len(done) == 24
    assert most_at_once["per_route"] == 1, "one route's samples never overlap"
    assert most_at_once["all"] >= 4, "different routes are judged at the same time"

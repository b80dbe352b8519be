"""The route writer: serialized per location over a bounded pool, coalescing floods, waiters told the outcome."""

from __future__ import annotations

import threading
import time

from assay.promotion import writer


def ref(name: str) -> writer.PolicyRef:
    return writer.PolicyRef("ns", name, f"uid-{name}")


def test_policies_on_one_location_never_run_at_once_and_locations_run_side_by_side():
    running: dict[str, int] = {}
    overlaps: list[str] = []
    lock = threading.Lock()

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        location = policy.name.split("-")[0]
        with lock:
            running[location] = running.get(location, 0) + 1
            if running[location] > 1:
                overlaps.append(location)
        time.sleep(0.01)
        with lock:
            running[location] -= 1
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job)
    for i in range(10):
        for location in ("proxy", "httproute"):
            routes.submit(location, ref(f"{location}-{i}"))
    for i in range(10):
        for location in ("proxy", "httproute"):
            assert routes.wait(f"uid-{location}-{i}", after=0, intent=None, timeout=5) is not None
    assert overlaps == []


def test_a_flood_for_one_policy_makes_one_sync():
    calls: list[str] = []
    gate = threading.Event()

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        gate.wait(5)
        calls.append(policy.name)
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job)
    routes.submit("proxy", ref("busy"))  # the worker takes this one and blocks on the gate
    time.sleep(0.05)
    for _ in range(10_000):
        routes.submit("proxy", ref("flooded"))
    gate.set()
    assert routes.wait("uid-flooded", after=0, intent=None, timeout=5) is not None
    time.sleep(0.05)
    assert calls.count("flooded") == 1


def test_waiter_gets_the_outcome_of_its_intent_and_a_failure_reschedules():
    attempts: list[bool] = []

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        attempts.append(urgent)
        if len(attempts) == 1:
            return writer.Outcome(intent="i1", error="gateway down", again_in=0.05)
        return writer.Outcome(intent="i1", done=True)

    routes = writer.RouteWriter(job)
    seq = routes.submit("proxy", ref("p"), urgent=True)
    first = routes.wait("uid-p", after=seq, intent="i1", timeout=5)
    assert first is not None and first.error == "gateway down" and not first.done
    second = routes.wait("uid-p", after=seq + 1, intent="i1", timeout=5)
    assert second is not None and second.done
    assert attempts == [True, False]


def test_wait_times_out_with_none():
    routes = writer.RouteWriter(lambda policy, urgent: writer.Outcome())
    assert routes.wait("uid-never", after=0, intent=None, timeout=0.05) is None


def test_a_job_that_raises_does_not_kill_the_worker():
    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        if policy.name == "bad":
            raise RuntimeError("boom")
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job)
    routes.submit("proxy", ref("bad"))
    routes.submit("proxy", ref("good"))
    bad = routes.wait("uid-bad", after=0, intent=None, timeout=5)
    assert bad is not None and bad.error == "RuntimeError: boom"
    good = routes.wait("uid-good", after=0, intent=None, timeout=5)
    assert good is not None and good.done
    routes.stop()


def test_a_thousand_locations_share_a_bounded_pool_and_each_stays_serialized():
    running: dict[str, int] = {}
    overlaps: list[str] = []
    peak = [0]
    lock = threading.Lock()

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        location = policy.name.rsplit("-", 1)[0]
        with lock:
            running[location] = running.get(location, 0) + 1
            peak[0] = max(peak[0], sum(running.values()))
            if running[location] > 1:
                overlaps.append(location)
        time.sleep(0.001)
        with lock:
            running[location] -= 1
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job, workers=4)
    names = [f"route{i}-{j}" for i in range(1000) for j in range(2)]
    for name in names:
        routes.submit(name.rsplit("-", 1)[0], ref(name))
    for name in names:
        assert routes.wait(f"uid-{name}", after=0, intent=None, timeout=30) is not None, name
    assert overlaps == [], "two syncs of one location ran at once"
    assert routes.threads() <= 4 and peak[0] <= 4
    routes.stop()


def test_a_later_due_policy_does_not_hold_up_an_earlier_one_elsewhere():
    done: list[str] = []
    routes = writer.RouteWriter(lambda policy, urgent: done.append(policy.name) or writer.Outcome(), workers=1)
    routes.submit("a", ref("late"), delay=0.5)
    routes.submit("b", ref("soon"))
    assert routes.wait("uid-soon", after=0, intent=None, timeout=2) is not None
    assert done == ["soon"]
    assert routes.wait("uid-late", after=0, intent=None, timeout=2) is not None
    routes.stop()


def test_an_urgent_sync_goes_before_routine_ones_due_earlier_at_its_location():
    order: list[str] = []
    gate = threading.Event()

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        if policy.name == "busy":
            gate.wait(5)
        order.append(policy.name)
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job, workers=1)
    routes.submit("proxy", ref("busy"))  # holds the location while the rest queue up
    time.sleep(0.05)
    for i in range(5):
        routes.submit("proxy", ref(f"check-{i}"))  # routine re-checks, due now
    routes.submit("proxy", ref("later"), delay=30.0, urgent=False)
    routes.submit("proxy", ref("rollback"), urgent=True)
    routes.submit("proxy", ref("check-0"), urgent=True)  # an already queued check made urgent moves up too
    gate.set()
    for name in ("rollback", "check-4"):
        assert routes.wait(f"uid-{name}", after=0, intent=None, timeout=5) is not None
    assert order[:3] == ["busy", "check-0", "rollback"]
    assert order[3:] == [f"check-{i}" for i in range(1, 5)]
    assert "later" not in order


def test_an_urgent_sync_not_due_yet_does_not_hold_back_due_routine_ones():
    done = threading.Event()

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        if policy.name == "check":
            done.set()
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job, workers=1)
    routes.submit("proxy", ref("soon"), delay=30.0, urgent=True)
    routes.submit("proxy", ref("check"))
    assert done.wait(5)


def test_follow_up_work_runs_with_the_location_free_and_before_waiters_see_the_outcome():
    started_other = threading.Event()
    follow_up_done = threading.Event()

    def post_events() -> None:
        assert started_other.wait(5), "the next policy at the location did not start while Events were posted"
        follow_up_done.set()

    def job(policy: writer.PolicyRef, urgent: bool) -> writer.Outcome:
        if policy.name == "first":
            return writer.Outcome(done=True, then=post_events)
        started_other.set()
        return writer.Outcome(done=True)

    routes = writer.RouteWriter(job, workers=2)
    routes.submit("proxy", ref("first"))
    routes.submit("proxy", ref("second"))
    assert routes.wait("uid-first", after=0, intent=None, timeout=5) is not None
    assert follow_up_done.is_set()

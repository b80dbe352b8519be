"""Each firing of an alert acts once per policy: re-sends are duplicates, a new startsAt acts again."""

from __future__ import annotations

import datetime

import pytest

from assay.alerts import matching

FIRST_FIRING = datetime.datetime(2025, 11, 30, 10, 0, tzinfo=datetime.UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _match(*, uid: str = "uid-a", fingerprint: str = "f00d", starts_at: datetime.datetime = FIRST_FIRING):
    return matching.Match(
        namespace="team-a",
        name="support-summary",
        uid=uid,
        alert_name="JudgeDrift",
        fingerprint=fingerprint,
        starts_at=starts_at,
    )


def test_repeat_of_the_same_firing_is_a_duplicate():
    deduper = matching.Deduper()

    assert deduper.claim([_match()]) == ([_match()], [])
    assert deduper.claim([_match()]) == ([], [_match()])


def test_new_starts_at_for_the_same_fingerprint_acts_again():
    deduper = matching.Deduper()
    deduper.claim([_match()])

    refired = _match(starts_at=FIRST_FIRING + datetime.timedelta(hours=2))

    assert deduper.claim([refired]) == ([refired], [])


def test_same_firing_for_another_policy_is_not_a_duplicate():
    deduper = matching.Deduper()
    deduper.claim([_match(uid="uid-a")])

    assert deduper.claim([_match(uid="uid-b")]) == ([_match(uid="uid-b")], [])


def test_the_same_firing_twice_in_one_delivery_acts_once():
    deduper = matching.Deduper()

    assert deduper.claim([_match(), _match()]) == ([_match()], [_match()])


def test_released_firings_act_again():
    deduper = matching.Deduper()
    new, _ = deduper.claim([_match()])

    deduper.release(new)

    assert deduper.claim([_match()]) == ([_match()], [])


def test_entries_expire_after_the_ttl():
    clock = FakeClock()
    deduper = matching.Deduper(ttl_seconds=60, clock=clock)
    deduper.claim([_match()])

    clock.now += 59
    assert deduper.claim([_match()]) == ([], [_match()])
    clock.now += 1
    assert len(deduper) == 0
    assert deduper.claim([_match()]) == ([_match()], [])


def test_memory_is_bounded_dropping_the_oldest_first():
    deduper = matching.Deduper(max_entries=3)
    firings = [_match(fingerprint=f"f{index}") for index in range(5)]

    for firing in firings:
        deduper.claim([firing])

    assert len(deduper) == 3
    assert deduper.claim([firings[0]]) == ([firings[0]], [])
    assert deduper.claim([firings[4]]) == ([], [firings[4]])


@pytest.mark.parametrize(("max_entries", "ttl_seconds"), [(0, 60.0), (10, 0.0)])
def test_rejects_a_deduper_that_remembers_nothing(max_entries: int, ttl_seconds: float):
    with pytest.raises(ValueError, match="must be"):
        matching.Deduper(max_entries=max_entries, ttl_seconds=ttl_seconds)

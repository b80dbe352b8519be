"""The watch's kept evidence, specified: what a sample keeps, chunks round-trip, the bound, and the replay
recomputing the detector's e-value and alarm exactly from the kept scores."""

from __future__ import annotations

import datetime
import json
import random

import pytest

from assay.api import routepolicy
from assay.watch import drift, evidence, state

PROMOTED = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.UTC)
PROMOTION = evidence.promotion_key("mini", PROMOTED)


def settings(**watch: object) -> state.Settings:
    return state.Settings.from_spec(routepolicy.Watch.model_validate(watch), qualification_margin=0.05)


def run_watch(
    s: state.Settings, scores: list[float | None], *, through_status: bool = True
) -> tuple[routepolicy.WatchStatus, evidence.Pending]:
    """Record scores as the operator does (status round trip between samples), keeping evidence as it does."""
    watch = state.start(candidate="mini", promoted_at=PROMOTED, settings=s)
    pending = evidence.Pending()
    now = PROMOTED
    for score in scores:
        now += datetime.timedelta(seconds=30)
        before = evidence.snapshot(watch)
        state.record(watch, s, score=score, cost_usd=0.001, now=now)
        if score is not None and watch.samples > before["samples"]:
            pending.add(PROMOTION, before, evidence.sample_after(watch, t=now, score=score), at=0.0)
        if through_status:
            watch = routepolicy.WatchStatus.model_validate(json.loads(json.dumps(watch.to_wire())))
    return watch, pending


def stored(s: state.Settings, pending: evidence.Pending, *, drop: set[int] = frozenset()) -> list[evidence.Chunk]:
    """The chunks the operator would write (slot reuse ignored), through their text; `drop` loses chunks."""
    chunks = []
    for (_, chunk), segments in sorted(pending.take().items()):
        if chunk in drop:
            continue
        head = evidence.header(policy="ns/p", candidate="mini", promoted_at=PROMOTED, chunk=chunk, settings=s)
        text = evidence.encode_chunk(head, segments)
        chunks.append(evidence.decode_chunk(text, source=f"chunk {chunk}"))
    return chunks


def drop_stream(n: int, *, seed: int, mean_drop_at: int | None) -> list[float | None]:
    rng = random.Random(seed)
    good, bad = [0.0, 0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.0, 0.25, 0.5, 1.0]
    return [rng.choice(bad if mean_drop_at is not None and i >= mean_drop_at else good) for i in range(n)]


def test_a_kept_sample_holds_its_number_time_score_and_e_value_and_no_text() -> None:
    s = settings()
    _, pending = run_watch(s, [1.0, None, 0.25])
    (chunk,) = stored(s, pending)
    samples = [x for seg in chunk.segments for x in seg.samples]
    assert [(x.n, x.score) for x in samples] == [(1, 1.0), (2, 0.25)]  # a judge error is not a sample
    assert all(x.e_value is not None and x.upper is None for x in samples)
    line = evidence.encode_segment(chunk.segments[0]).splitlines()[1]
    assert len(line) < 80 and json.loads(line)[:3] == [1, int(PROMOTED.timestamp()) + 30, 1.0]


def test_chunks_round_trip_through_their_text() -> None:
    s = settings(mode="Window", windowSamples=300)
    _, pending = run_watch(s, drop_stream(450, seed=1, mean_drop_at=None))
    taken = pending.take()
    for (_, chunk), segments in taken.items():
        head = evidence.header(policy="ns/p", candidate="mini", promoted_at=PROMOTED, chunk=chunk, settings=s)
        decoded = evidence.decode_chunk(evidence.encode_chunk(head, segments), source="x")
        assert decoded.segments == tuple(segments)
        assert evidence.settings_from(decoded.header["settings"]) == s


def test_storage_is_bounded_by_slots_of_fixed_sample_chunks() -> None:
    assert evidence.KEPT_SAMPLES == evidence.SLOTS * evidence.CHUNK_SAMPLES == 10_000
    assert evidence.chunk_of(1) == 0 and evidence.chunk_of(evidence.CHUNK_SAMPLES + 1) == 1
    assert evidence.slot_of(evidence.SLOTS) == 0
    s = settings(mode="Window", windowSamples=2000)  # the largest window: its scores are never in a header
    _, pending = run_watch(s, drop_stream(evidence.CHUNK_SAMPLES, seed=2, mean_drop_at=None), through_status=False)
    ((_, segments),) = pending.take().items()
    head = evidence.header(policy="ns/p", candidate="mini", promoted_at=PROMOTED, chunk=0, settings=s)
    assert len(evidence.encode_chunk(head, segments)) < 16_000  # a chunk of 200 samples, far under 1 MiB


@pytest.mark.parametrize("mode", ["Indefinite", "Window"])
def test_replay_recomputes_the_e_value_and_alarm_of_the_watch(mode: str) -> None:
    s = settings(mode=mode, windowSamples=250, meanDaysBetweenFalseAlarms=1, maxSamplesPerDay=500)
    watch, pending = run_watch(s, drop_stream(1500, seed=3, mean_drop_at=400))
    assert watch.alarmed_at is not None
    check, replayed_settings = evidence.replay(stored(s, pending), promotion=PROMOTION, watch=watch)
    assert replayed_settings == s
    assert check.complete and check.matches and not check.mismatches
    assert (check.alarmed_at, check.e_value) == (watch.alarmed_at, watch.e_value)
    assert "matches status.watch" in check.message()


def test_replay_equals_the_drift_detector_run_on_the_scores() -> None:
    s = settings(meanDaysBetweenFalseAlarms=2, maxSamplesPerDay=500)
    scores = drop_stream(3000, seed=4, mean_drop_at=1000)
    watch, pending = run_watch(s, scores, through_status=False)
    detector = drift.DriftDetector(s.drift_margin, s.threshold)
    for score in scores:
        assert score is not None
        if detector.update(score):
            break
    check, _ = evidence.replay(stored(s, pending), promotion=PROMOTION, watch=watch)
    assert (check.alarmed_at, check.e_value) == (detector.alarmed_at, detector.e_value)
    assert [x.e_value for x in check.series][-1] == detector.e_value


def test_a_lost_chunk_shows_as_a_gap_and_the_later_chunks_still_replay_from_their_snapshots() -> None:
    s = settings(meanDaysBetweenFalseAlarms=2, maxSamplesPerDay=500)
    watch, pending = run_watch(s, drop_stream(1200, seed=5, mean_drop_at=600))
    check, _ = evidence.replay(stored(s, pending, drop={1}), promotion=PROMOTION, watch=watch)
    assert check.gaps == ((201, 400),)
    assert not check.complete and check.matches
    assert check.replayed == check.kept and check.alarmed_at == watch.alarmed_at


def test_window_samples_after_a_gap_cannot_be_replayed_and_say_so() -> None:
    s = settings(mode="Window", windowSamples=1000)
    watch, pending = run_watch(s, drop_stream(600, seed=6, mean_drop_at=None))
    check, _ = evidence.replay(stored(s, pending, drop={0}), promotion=PROMOTION, watch=watch)
    assert check.unverifiable == 400 and check.replayed == 0
    assert not check.matches and "not replayable" in check.message()


def test_a_tampered_score_is_a_mismatch() -> None:
    s = settings()
    watch, pending = run_watch(s, [1.0, 0.5, 0.0, 1.0])
    (chunk,) = stored(s, pending)
    segment = chunk.segments[0]
    first = segment.samples[0]
    forged = evidence.Sample(first.n, first.t, 0.0, first.e_value, first.upper)
    chunk = evidence.Chunk(chunk.header, (evidence.Segment(segment.before, (forged, *segment.samples[1:])),))
    check, _ = evidence.replay([chunk], promotion=PROMOTION, watch=watch)
    assert check.mismatches and not check.matches


def test_a_bad_line_names_the_chunk_and_line() -> None:
    with pytest.raises(evidence.WatchEvidenceError, match="cm-1: line 2"):
        evidence.decode_chunk('{"format": 1}\n[1, 2]\n', source="cm-1")


def test_pending_is_due_by_count_or_age() -> None:
    pending = evidence.Pending()
    assert not pending.due(now=0.0, samples=2, seconds=10)
    pending.add("p", {"samples": 0}, evidence.Sample(1, 0, 1.0, 1.0, None), at=0.0)
    assert not pending.due(now=5.0, samples=2, seconds=10)
    assert pending.due(now=10.0, samples=2, seconds=10)
    pending.add("p", {"samples": 1}, evidence.Sample(2, 0, 1.0, 1.0, None), at=6.0)
    assert pending.due(now=6.0, samples=2, seconds=10) and len(pending) == 2
    assert len(pending.take()[("p", 0)][0].samples) == 2 and len(pending) == 0

"""The live quality watch's evidence, pure: each judged sample's score kept compactly for `assay report` and
`assay analyze`, and the watch recomputed from it. No Kubernetes, no clock: the caller does the I/O.

What is kept per sample, and nothing else (never prompt or response text): its sample number in the watch
(1, 2, ...; judge errors are not samples), the time it was recorded (whole seconds since the epoch), its score,
and after it the detector's e-value (Indefinite, or after the window handed over) or the watch window's upper
confidence bound (Window). Samples are written in segments: each segment starts with the watch's counts and
detector state just before its first sample (`before`), so it replays exactly on its own (a gap before it, from
samples recorded in status but lost in a crash before they were stored, does not stop the rest from being
checked). In the watch window the state is the window's scores, which are not repeated in `before`: a window
segment replays only from an unbroken run of samples from the first.

Storage: the samples of one promotion fall in chunks of `CHUNK_SAMPLES` by sample number (chunk c holds
samples c * CHUNK_SAMPLES + 1 ...); chunk c is kept in slot c % SLOTS, so one policy holds at most SLOTS
chunks, the latest SLOTS * CHUNK_SAMPLES samples (10,000), a new promotion overwriting the slots of the last
one. A chunk is about 9 KB when its samples came in batches, at most about 91 KB when each came alone (a
segment header, the detector state, is about 400 bytes): at most about 5 MB per policy. A chunk's text is a
header line, then segment lines (`{"before": ...}`) and sample lines (`[n, t, score, e, upper]`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from assay.api import routepolicy
from assay.watch import state

FORMAT = 1
CHUNK_SAMPLES = 200
SLOTS = 50
KEPT_SAMPLES = CHUNK_SAMPLES * SLOTS


class WatchEvidenceError(ValueError):
    """A chunk that cannot be read as watch evidence; the message names the chunk and the line."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One judged sample as kept: number in the watch, time (epoch seconds), score, and what followed it."""

    n: int
    t: int
    score: float
    e_value: float | None
    upper: float | None

    def to_line(self) -> list[Any]:
        return [self.n, self.t, self.score, self.e_value, self.upper]


@dataclasses.dataclass(frozen=True)
class Segment:
    """Samples recorded one after another, with the watch's state just before the first (`before`)."""

    before: dict[str, Any]
    samples: tuple[Sample, ...]

    @property
    def first(self) -> int:
        return self.samples[0].n


def promotion_key(candidate: str, promoted_at: datetime.datetime) -> str:
    """A short name for one promotion (a new promotion starts a new watch), usable as a label value."""
    text = f"{candidate}\n{promoted_at.astimezone(datetime.UTC).isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def chunk_of(n: int) -> int:
    """The chunk that holds sample number n (1-based)."""
    return (n - 1) // CHUNK_SAMPLES


def slot_of(chunk: int) -> int:
    return chunk % SLOTS


def settings_dict(settings: state.Settings) -> dict[str, Any]:
    """The watch settings as JSON-safe numbers (the replay needs them; the caps are kept for the record)."""
    out = dataclasses.asdict(settings)
    out["starved_after"] = settings.starved_after.total_seconds()
    return out


def settings_from(data: Mapping[str, Any]) -> state.Settings:
    values = dict(data)
    values["starved_after"] = datetime.timedelta(seconds=float(values["starved_after"]))
    return state.Settings(**values)


def snapshot(watch: routepolicy.WatchStatus) -> dict[str, Any]:
    """The watch's counts and detector state before a segment; in the watch window the detector state is the
    window's scores, replaced by their count (the segments before hold them)."""
    detector = dict(watch.detector)
    if "scores" in detector:
        detector = {"windowScores": len(detector["scores"])}
    return {
        "samples": watch.samples,
        "meanScore": watch.mean_score,
        "wins": watch.wins,
        "ties": watch.ties,
        "losses": watch.losses,
        "detector": detector,
    }


def sample_after(watch: routepolicy.WatchStatus, *, t: datetime.datetime, score: float) -> Sample:
    """The kept form of the sample `state.record` just counted as watch.samples."""
    upper = watch.detector.get("windowUpper") if "scores" in watch.detector else None
    return Sample(
        n=watch.samples,
        t=int(t.timestamp()),
        score=score,
        e_value=watch.e_value if watch.e_value is not None and upper is None else None,
        upper=None if upper is None else float(upper),
    )


def header(
    *, policy: str, candidate: str, promoted_at: datetime.datetime, chunk: int, settings: state.Settings
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "policy": policy,
        "candidate": candidate,
        "promotedAt": promoted_at.astimezone(datetime.UTC).isoformat(),
        "promotion": promotion_key(candidate, promoted_at),
        "chunk": chunk,
        "settings": settings_dict(settings),
    }


def encode_segment(segment: Segment) -> str:
    """Segment lines to append to a chunk's text (compact JSON, one line each, newline-terminated)."""
    lines = [json.dumps({"before": segment.before}, separators=(",", ":"), allow_nan=False)]
    lines += [json.dumps(s.to_line(), separators=(",", ":"), allow_nan=False) for s in segment.samples]
    return "\n".join(lines) + "\n"


def encode_chunk(head: Mapping[str, Any], segments: Iterable[Segment]) -> str:
    """A chunk's whole text: the header line, then each segment's lines."""
    text = json.dumps(dict(head), separators=(",", ":"), allow_nan=False) + "\n"
    return text + "".join(encode_segment(s) for s in segments)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A decoded chunk: its header and segments (in the order written)."""

    header: dict[str, Any]
    segments: tuple[Segment, ...]


def decode_chunk(text: str, *, source: str) -> Chunk:
    """The chunk `encode_chunk` (and appended `encode_segment`s) wrote; WatchEvidenceError names a bad line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise WatchEvidenceError(f"{source}: empty, not watch evidence")
    try:
        parsed = [json.loads(line) for line in lines]
    except json.JSONDecodeError as exc:
        raise WatchEvidenceError(f"{source}: line {exc.lineno}: not JSON") from None
    head = parsed[0]
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise WatchEvidenceError(f"{source}: line 1: not a watch evidence header of format {FORMAT}")
    segments: list[Segment] = []
    before: dict[str, Any] | None = None
    samples: list[Sample] = []
    for line_no, item in enumerate(parsed[1:], start=2):
        if isinstance(item, dict) and isinstance(item.get("before"), dict):
            if before is not None and samples:
                segments.append(Segment(before, tuple(samples)))
            before, samples = item["before"], []
        elif isinstance(item, list) and len(item) == 5 and before is not None:
            n, t, score, e_value, upper = item
            if not (isinstance(n, int) and isinstance(score, int | float) and 0.0 <= score <= 1.0):
                raise WatchEvidenceError(f"{source}: line {line_no}: not a sample [n, t, score, e, upper]")
            samples.append(Sample(n, int(t), float(score), _number(e_value), _number(upper)))
        else:
            raise WatchEvidenceError(f"{source}: line {line_no}: neither a segment start nor a sample")
    if before is not None and samples:
        segments.append(Segment(before, tuple(samples)))
    return Chunk(head, tuple(segments))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class Pending:
    """Samples recorded but not yet stored, as segments by (promotion, chunk): what a crash can lose.

    `add` is called once per recorded sample, in sample order per promotion, with the watch's snapshot from
    before it; `take` hands over everything pending (the caller stores it, or drops it on failure)."""

    def __init__(self) -> None:
        self._segments: dict[tuple[str, int], list[Segment]] = {}
        self._oldest: float | None = None

    def add(self, promotion: str, before: Mapping[str, Any], sample: Sample, *, at: float) -> None:
        key = (promotion, chunk_of(sample.n))
        segments = self._segments.setdefault(key, [])
        if segments and segments[-1].samples[-1].n == sample.n - 1:
            segments[-1] = Segment(segments[-1].before, (*segments[-1].samples, sample))
        else:
            segments.append(Segment(dict(before), (sample,)))
        self._oldest = at if self._oldest is None else self._oldest

    def __len__(self) -> int:
        return sum(len(s.samples) for segments in self._segments.values() for s in segments)

    def due(self, *, now: float, samples: int, seconds: float) -> bool:
        """Worth storing now: `samples` are pending, or the oldest has waited `seconds`."""
        return bool(self._segments) and (
            len(self) >= samples or (self._oldest is not None and now - self._oldest >= seconds)
        )

    def take(self) -> dict[tuple[str, int], list[Segment]]:
        taken, self._segments, self._oldest = self._segments, {}, None
        return taken


@dataclasses.dataclass(frozen=True)
class Check:
    """The watch recomputed from its kept samples, set beside what status.watch says."""

    kept: int
    first: int | None
    last: int | None
    replayed: int
    unverifiable: int
    end_replayed: bool
    mismatches: tuple[int, ...]
    gaps: tuple[tuple[int, int], ...]
    e_value: float | None
    upper: float | None
    alarmed_at: int | None
    status_samples: int
    status_e_value: float | None
    status_alarmed_at: int | None
    series: tuple[Sample, ...]
    means: tuple[float | None, ...] = ()

    @property
    def complete(self) -> bool:
        """Every sample status.watch counts is kept and replayed."""
        return self.status_samples == 0 or (
            self.first == 1 and self.last == self.status_samples and not self.gaps and not self.unverifiable
        )

    @property
    def matches(self) -> bool:
        """The replay reproduced every kept e-value and bound, and where it reached status's last sample, its
        e-value and alarm."""
        if self.mismatches or (self.kept and not self.end_replayed) or (not self.kept and self.status_samples):
            return False
        if self.last is None or self.last != self.status_samples:
            return self.status_alarmed_at is None or self.alarmed_at == self.status_alarmed_at
        return self.alarmed_at == self.status_alarmed_at and (
            self.status_e_value is None or self.e_value == self.status_e_value
        )

    def message(self) -> str:
        """One line for a person: what was recomputed and whether it agrees with status.watch."""
        if not self.kept:
            return f"no samples kept (status.watch counts {self.status_samples})"
        where = f"samples {self.first}..{self.last} kept ({self.kept}), {self.replayed} replayed"
        if self.unverifiable:
            where += f", {self.unverifiable} not replayable (window samples after a gap)"
        if self.gaps:
            where += ", missing " + ", ".join(f"{a}..{b}" for a, b in self.gaps)
        if self.last is not None and self.last < self.status_samples:
            where += f"; status.watch counts {self.status_samples} (the last not stored yet, or lost in a restart)"
        verdict = "matches status.watch" if self.matches else "DOES NOT match status.watch"
        if self.mismatches:
            verdict += f" (stored e-value differs from the replay at samples {_ranges(self.mismatches)})"
        alarm = f"alarm at sample {self.alarmed_at}" if self.alarmed_at is not None else "no alarm"
        e = f"e-value {self.e_value:.6g}" if self.e_value is not None else f"window bound {self.upper}"
        return f"{where}; recomputed {e}, {alarm}: {verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "first": self.first,
            "last": self.last,
            "replayed": self.replayed,
            "unverifiable": self.unverifiable,
            "end_replayed": self.end_replayed,
            "mismatches": list(self.mismatches),
            "gaps": [list(g) for g in self.gaps],
            "e_value": self.e_value,
            "window_upper": self.upper,
            "alarmed_at": self.alarmed_at,
            "status": {
                "samples": self.status_samples,
                "e_value": self.status_e_value,
                "alarmed_at": self.status_alarmed_at,
            },
            "complete": self.complete,
            "matches": self.matches,
            "message": self.message(),
        }


def _ranges(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:5])
    return shown + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")


def _window_upper(watch: routepolicy.WatchStatus | None) -> float | None:
    if watch is None or "scores" not in watch.detector:
        return None
    return float(watch.detector["windowUpper"])


def _resume(
    before: Mapping[str, Any], settings: state.Settings, scores: Sequence[float] | None
) -> routepolicy.WatchStatus | None:
    """A WatchStatus at `before`, or None when it is in the window and its scores are not all at hand."""
    detector = dict(before.get("detector") or {})
    if "windowScores" in detector:
        count = int(detector.pop("windowScores"))
        if scores is None or len(scores) != count:
            return None
        detector = {"scores": list(scores)}
    return routepolicy.WatchStatus(
        mode=settings.mode,
        samples=int(before["samples"]),
        mean_score=before.get("meanScore"),
        wins=int(before.get("wins", 0)),
        ties=int(before.get("ties", 0)),
        losses=int(before.get("losses", 0)),
        drift_margin=settings.drift_margin,
        detector=detector,
        e_value=detector.get("eValue") if "threshold" in detector else None,
        threshold=detector.get("threshold"),
    )


def replay(
    chunks: Iterable[Chunk], *, promotion: str, watch: routepolicy.WatchStatus | None = None
) -> tuple[Check, state.Settings | None]:
    """Replay every kept sample of one promotion through `state.record` (the operator's own path, deciding with
    assay.watch.drift) from each segment's `before`, compare each stored e-value or window bound with the
    replay's, and set the end beside `watch` (status.watch). Segments are taken in sample order; a sample kept
    twice counts once."""
    mine = [c for c in chunks if c.header.get("promotion") == promotion]
    settings = settings_from(mine[0].header["settings"]) if mine else None
    segments = sorted((s for c in mine for s in c.segments), key=lambda s: s.first)
    current: routepolicy.WatchStatus | None = None
    window_scores: list[float] | None = []  # the scores from sample 1 while unbroken, for window segments
    series: list[Sample] = []
    means: list[float | None] = []
    mismatches: list[int] = []
    gaps: list[tuple[int, int]] = []
    replayed = unverifiable = 0
    last = 0
    for segment in segments:
        samples = [s for s in segment.samples if s.n > last]
        if not samples or settings is None:
            continue
        if samples[0].n != last + 1:
            if series:
                gaps.append((last + 1, samples[0].n - 1))
            current, window_scores = None, None
        if current is None and samples[0].n == segment.first:
            current = _resume(segment.before, settings, window_scores)
        for sample in samples:
            if current is not None:
                when = datetime.datetime.fromtimestamp(sample.t, datetime.UTC)
                state.record(current, settings, score=sample.score, cost_usd=0.0, now=when)
                replayed += 1
                again = sample_after(current, t=when, score=sample.score)
                if (again.n, again.e_value, again.upper) != (sample.n, sample.e_value, sample.upper):
                    mismatches.append(sample.n)
            else:
                unverifiable += 1
            means.append(current.mean_score if current is not None else None)
            if window_scores is not None:
                window_scores.append(sample.score)
            series.append(sample)
            last = sample.n
    end = series[-1] if series else None
    check = Check(
        kept=len(series),
        first=series[0].n if series else None,
        last=end.n if end else None,
        replayed=replayed,
        unverifiable=unverifiable,
        end_replayed=current is not None,
        mismatches=tuple(mismatches),
        gaps=tuple(gaps),
        e_value=current.e_value if current is not None else None,
        upper=_window_upper(current),
        alarmed_at=current.alarmed_at if current is not None else None,
        status_samples=watch.samples if watch is not None else 0,
        status_e_value=watch.e_value if watch is not None else None,
        status_alarmed_at=watch.alarmed_at if watch is not None else None,
        series=tuple(series),
        means=tuple(means),
    )
    return check, settings

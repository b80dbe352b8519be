"""The pre-registered evaluation order, fixed from the seed and the dataset before any call is made.

The sequence is a seeded permutation of the valid records with sensitivity controls interleaved: each
position is a control with probability controlShare, decided from (seed, position) alone. A control pits
a record's baseline answer against a deterministically degraded copy (truncated, sentences shuffled, or
another record's baseline answer). The sequence holds at most maxSamples non-control pairs and ends with
the last of them; a lower maxSamples gives a prefix of the same sequence. Shard k of P takes positions k, k+P, k+2P, ...

Because the order never depends on outcomes, a prefix of it is an unbiased sample: the sequential test
consumes the longest complete prefix, never whatever finished first (which can correlate with length).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from typing import Literal

from assay.evaluator import dataset

ControlKind = Literal["truncated", "shuffled", "other"]
CONTROL_KINDS: tuple[ControlKind, ...] = ("truncated", "shuffled", "other")
TRUNCATE_SHARE = 0.4

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclasses.dataclass(frozen=True)
class Slot:
    """One position of the sequence: a pair to evaluate, or a control built from `record`'s baseline answer.

    For a control of kind "other", `other` is the record whose baseline answer stands in for the candidate.
    """

    seq: int
    record: dataset.Record
    control_kind: ControlKind | None = None
    other: dataset.Record | None = None

    @property
    def control(self) -> bool:
        return self.control_kind is not None


def _control_rng(seed: int, position: int) -> random.Random:
    # A string seed is hashed with SHA-512: stable across processes, unlike hash().
    return random.Random(f"assay/control/{seed}/{position}")


def is_control(*, seed: int, position: int, share: float) -> bool:
    """Whether `position` holds a control: a function of (seed, position) only."""
    return share > 0 and _control_rng(seed, position).random() < share


def build_plan(records: Sequence[dataset.Record], *, seed: int, control_share: float, max_samples: int) -> list[Slot]:
    """The whole sequence, the same for the same records, seed and settings, in every shard."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    permuted = [records[i] for i in order]
    slots: list[Slot] = []
    position = 0
    for record in permuted[:max_samples]:
        while is_control(seed=seed, position=position, share=control_share):
            # Controls draw from all records, so a lower maxSamples gives a prefix of the same sequence.
            slots.append(_control_slot(permuted, seed=seed, position=position))
            position += 1
        slots.append(Slot(seq=position, record=record))
        position += 1
    return slots


def _control_slot(pool: Sequence[dataset.Record], *, seed: int, position: int) -> Slot:
    rng = _control_rng(seed, position)
    rng.random()  # the draw that made this position a control
    kind = rng.choice(CONTROL_KINDS)
    index = rng.randrange(len(pool))
    if kind != "other":
        return Slot(seq=position, record=pool[index], control_kind=kind)
    if len(pool) < 2:
        return Slot(seq=position, record=pool[index], control_kind="truncated")
    other = (index + rng.randrange(1, len(pool))) % len(pool)
    return Slot(seq=position, record=pool[index], control_kind=kind, other=pool[other])


def shard_slots(plan: Sequence[Slot], *, shard: int, shards: int) -> list[Slot]:
    """The positions shard `shard` of `shards` evaluates: shard, shard+shards, ..."""
    return list(plan[shard::shards])


def split_sentences(text: str) -> list[str]:
    """The text's sentences, split after '.', '!' or '?' followed by white space."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _truncated(text: str) -> str:
    sentences = split_sentences(text)
    if len(sentences) >= 3:
        return " ".join(sentences[: max(1, round(len(sentences) * TRUNCATE_SHARE))])
    words = text.split()
    return " ".join(words[: int(len(words) * TRUNCATE_SHARE)])


def _shuffled(text: str, rng: random.Random) -> str | None:
    units = split_sentences(text)
    if len(units) < 2:
        units = text.split()
    if len(set(units)) < 2:
        return None
    shuffled = list(units)
    while shuffled == units:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def degrade(
    text: str, kind: ControlKind, *, seed: int, position: int, other_text: str | None = None
) -> tuple[str, ControlKind]:
    """The degraded copy of a baseline answer for the control at `position`, and the kind applied.

    Deterministic in (text, kind, seed, position, other_text). A kind that cannot change this text (one
    word to shuffle, another record with the same answer) falls back to truncation, so a control never
    pits an answer against itself unless the answer is empty.
    """
    if kind == "shuffled":
        shuffled = _shuffled(text, random.Random(f"assay/degrade/{seed}/{position}"))
        if shuffled is not None:
            return shuffled, "shuffled"
    if kind == "other" and other_text is not None and other_text.strip() != text.strip():
        return other_text, "other"
    return _truncated(text), "truncated"

"""Answer fingerprints: near-duplicate answers to different prompts, the mark of a prompt-independent exploit.

A judge can be fooled by the candidate itself: AlpacaEval's "null model" attack wins against GPT-4 judges
with one constant answer that ignores the question. Sensitivity controls cannot see that (they degrade the
baseline's answers, not the candidate's), but the evidence can: a candidate that gives near-identical
answers to different prompts, where the baseline's answers to the same prompts differ, is not answering the
prompts. The evaluator records a 64-bit SimHash of each answer (`simhash`); the decision counts, pair by
pair, whether the candidate's answer near-duplicates (Hamming distance <= 3) its answer to an earlier prompt
whose baseline answer was not a near-duplicate of this one's (`NearDuplicates`). Pure Python.
"""

from __future__ import annotations

import hashlib
import re

BITS = 64
NEAR = 3  # Hamming distance at or below which two fingerprints are near-duplicates
_BANDS = 4  # NEAR + 1 bands: two near-duplicates agree exactly on at least one band (pigeonhole)
_BAND_BITS = BITS // _BANDS
_WORD = re.compile(r"\w+", re.UNICODE)


def simhash(text: str) -> str:
    """The 64-bit SimHash of the text's word 3-shingles (lowercased), as 16 hex digits."""
    words = _WORD.findall(text.lower())
    shingles = [" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))] if words else [text]
    weights = [0] * BITS
    for shingle in shingles:
        value = int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")
        for bit in range(BITS):
            weights[bit] += 1 if value >> bit & 1 else -1
    out = sum(1 << bit for bit in range(BITS) if weights[bit] > 0)
    return f"{out:016x}"


def distance(first: str, second: str) -> int:
    """Hamming distance between two fingerprints."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


class NearDuplicates:
    """Candidate fingerprints seen so far, indexed by band so a lookup touches only likely near-duplicates."""

    def __init__(self) -> None:
        self._pairs: list[tuple[int, int]] = []  # (baseline, candidate)
        self._bands: list[dict[int, list[int]]] = [{} for _ in range(_BANDS)]

    def add(self, baseline: str, candidate: str) -> bool:
        """Record one pair; True when its candidate answer repeats one given to a prompt the baseline answered
        differently."""
        base, cand = int(baseline, 16), int(candidate, 16)
        keys = [(cand >> (band * _BAND_BITS)) & ((1 << _BAND_BITS) - 1) for band in range(_BANDS)]
        repeated = False
        seen: set[int] = set()
        for band, key in enumerate(keys):
            for index in self._bands[band].get(key, ()):
                if index in seen:
                    continue
                seen.add(index)
                other_base, other_cand = self._pairs[index]
                if (cand ^ other_cand).bit_count() <= NEAR and (base ^ other_base).bit_count() > NEAR:
                    repeated = True
                    break
            if repeated:
                break
        index = len(self._pairs)
        self._pairs.append((base, cand))
        for band, key in enumerate(keys):
            self._bands[band].setdefault(key, []).append(index)
        return repeated

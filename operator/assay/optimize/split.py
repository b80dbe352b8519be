"""The no-peeking split: a dataset's record ids into train / validation / holdout, fixed before any optimizer runs.

Each id gets a rank from sha256(seed, id), and the parts are cut from that order at exact sizes: the split is
a function of the seed and the set of ids alone (reordering the file changes nothing), every part is in a
seeded order independent of the file's, and the sizes are exact (`round(share * n)`, the rest is train). The
optimizer sees train and validation only; the holdout is what qualifies the prompt it picks.

The alpha bookkeeping: every (candidate, variant) qualified on the same holdout pool is one test, and the
pool's alpha is divided over all of them (Bonferroni, valid however the tests depend on each other). Variants
that were only compared on train or validation are not tests: the holdout never saw them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence

PARTS = ("train", "validation", "holdout")


class SplitError(ValueError):
    """A split that cannot be made; the message names the setting or the record id."""


def rank_key(seed: int, record_id: str) -> str:
    """The hex digest that orders `record_id` in the split of `seed`."""
    return hashlib.sha256(f"assay/split/{seed}/{record_id}".encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Split:
    """Record ids per part, each part in the seeded order; `digest` names the whole split (seed, parts)."""

    seed: int
    validation_share: float
    holdout_share: float
    train: tuple[str, ...]
    validation: tuple[str, ...]
    holdout: tuple[str, ...]

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "holdout": len(self.holdout)}

    @property
    def digest(self) -> str:
        """sha256 of the seed and each part's ids in order: equal digests, equal splits."""
        h = hashlib.sha256(f"assay/split/{self.seed}".encode())
        for name in PARTS:
            h.update(f"\n[{name}]".encode())
            for record_id in getattr(self, name):
                h.update(b"\n" + record_id.encode())
        return h.hexdigest()

    def part_of(self, record_id: str) -> str:
        """Which part holds `record_id`; raises KeyError for an id not in the split."""
        for name in PARTS:
            if record_id in getattr(self, name):
                return name
        raise KeyError(record_id)

    def status(self) -> dict[str, object]:
        """What a status stores about the split (no ids: the seed and shares reproduce them from the dataset)."""
        return {
            "seed": self.seed,
            "validationShare": self.validation_share,
            "holdoutShare": self.holdout_share,
            "sizes": self.sizes,
            "digest": self.digest,
        }


def split(record_ids: Iterable[str], *, seed: int, validation_share: float = 0.2, holdout_share: float = 0.4) -> Split:
    """The split of `record_ids` (unique) for `seed`: holdout and validation of round(share * n) ids each, the
    rest train. Raises SplitError when a share is out of range, an id repeats, or a part would be empty."""
    ids = list(record_ids)
    for name, share in (("validationShare", validation_share), ("holdoutShare", holdout_share)):
        if not 0.0 < share < 1.0:
            raise SplitError(f"{name} must be in (0, 1), got {share}")
    if validation_share + holdout_share >= 1.0:
        raise SplitError(
            f"validationShare + holdoutShare must leave records to train on, got {validation_share + holdout_share}"
        )
    seen: set[str] = set()
    for record_id in ids:
        if record_id in seen:
            raise SplitError(f"record id {record_id!r} repeats: a split needs unique ids")
        seen.add(record_id)
    n = len(ids)
    n_holdout, n_validation = round(holdout_share * n), round(validation_share * n)
    if min(n_holdout, n_validation, n - n_holdout - n_validation) < 1:
        raise SplitError(
            f"{n} records cannot fill train, validation ({validation_share}) and holdout ({holdout_share}): "
            "every part needs at least one record"
        )
    ordered = sorted(ids, key=lambda record_id: (rank_key(seed, record_id), record_id))
    return Split(
        seed=seed,
        validation_share=validation_share,
        holdout_share=holdout_share,
        holdout=tuple(ordered[:n_holdout]),
        validation=tuple(ordered[n_holdout : n_holdout + n_validation]),
        train=tuple(ordered[n_holdout + n_validation :]),
    )


def tests_on_pool(qualified: Mapping[str, Sequence[str]]) -> int:
    """K: how many (candidate, variant) tests run on one holdout pool, from candidate -> variants qualified there
    (e.g. {"cheap": ["as-written", "optimized"], "cheaper": ["optimized"]} is 3). Raises SplitError for a
    candidate without variants or a variant named twice."""
    total = 0
    for candidate, variants in qualified.items():
        if not variants:
            raise SplitError(f"candidate {candidate!r} qualifies no variant on the pool: leave it out")
        if len(set(variants)) != len(variants):
            raise SplitError(f"candidate {candidate!r} names a variant twice: {list(variants)}")
        total += len(variants)
    if total == 0:
        raise SplitError("no test runs on the pool")
    return total


def per_test_alpha(alpha: float, qualified: Mapping[str, Sequence[str]]) -> float:
    """alpha / K: the level each test on the pool runs at, so that the chance of any false promotion among them
    stays <= alpha (TestSettings(alpha=alpha, candidates=K) applies it)."""
    if not 0.0 < alpha < 1.0:
        raise SplitError(f"alpha must be in (0, 1), got {alpha}")
    return alpha / tests_on_pool(qualified)

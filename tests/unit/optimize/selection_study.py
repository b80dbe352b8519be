"""By simulation: picking the best of k prompt variants and qualifying it on the same data, against picking on
validation and qualifying on a holdout the selection never saw.

Every variant is a candidate exactly at the margin (mu = 0.5 - margin, 30% ties): any promotion is a false one.
Scores are drawn by the numpy twin of the decision (`unit.qualification.betting_twin`, held to the real
procedure record for record by test_twin_matches_the_decision) and decided by it with the real TestSettings.
Variants are drawn one at a time, and only the rows a run chose are kept, so memory stays at two score matrices.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

from assay.optimize import split
from assay.qualification import decision
from unit.qualification import betting_twin as twin


@dataclasses.dataclass(frozen=True)
class Rate:
    """A promotion rate over `runs` runs and its binomial standard error."""

    promoted: float
    runs: int

    @property
    def se(self) -> float:
        return math.sqrt(self.promoted * (1 - self.promoted) / self.runs)


def _variants(k: int, runs: int, n: int, *, mu: float, seed: int) -> Iterator[twin.Pairs]:
    """Each variant's pairs on the same n records, one variant at a time."""
    for j in range(k):
        yield twin.simulate_pairs(runs, n, mu=mu, seed=seed * 1000 + j)


def _take(rows: np.ndarray, into: twin.Pairs | None, pairs: twin.Pairs) -> twin.Pairs:
    """`into` with the runs where `rows` holds replaced by those of `pairs`."""
    if into is None:
        return pairs
    assert into.agreed is not None and pairs.agreed is not None
    rows = rows[:, None]
    return twin.Pairs(
        np.where(rows, pairs.scores, into.scores),
        np.where(rows, pairs.consistent, into.consistent),
        agreed=np.where(rows, pairs.agreed, into.agreed),
    )


def _best(k: int, runs: int, n: int, *, mu: float, seed: int) -> tuple[np.ndarray, twin.Pairs]:
    """Per run, which of k variants has the highest mean score on n records (the first on ties), and its pairs."""
    choice = np.zeros(runs, dtype=np.int64)
    best_mean = np.full(runs, -np.inf)
    best: twin.Pairs | None = None
    for j, pairs in enumerate(_variants(k, runs, n, mu=mu, seed=seed)):
        mean = pairs.scores.mean(axis=1)
        better = mean > best_mean
        choice[better], best_mean[better] = j, mean[better]
        best = _take(better, best, pairs)
    assert best is not None
    return choice, best


def naive_best_of_k(*, k: int, runs: int, n: int, alpha: float, seed: int, mu: float = 0.45) -> Rate:
    """Score k variants on the same n records, keep the best, qualify it on those same records at alpha."""
    _, chosen = _best(k, runs, n, mu=mu, seed=seed)
    settings = decision.TestSettings(alpha=alpha, min_controls=0)
    return Rate(twin.decide(chosen, settings).rate(twin.PASSED), runs)


def select_then_holdout(
    *,
    k: int,
    runs: int,
    n: int,
    alpha: float,
    seed: int,
    mu: float = 0.45,
    validation_share: float = 0.2,
    holdout_share: float = 0.4,
    with_as_written: bool = False,
) -> Rate:
    """Pick the best of k variants on the validation part, qualify it on the holdout part at alpha / K.

    Variant 0 is the candidate as written. With `with_as_written` it is qualified on the same holdout too, and a
    run is a false promotion when either test passes (K = 2, each at alpha / 2).
    """
    n_validation, n_holdout = round(validation_share * n), round(holdout_share * n)
    choice, _ = _best(k, runs, n_validation, mu=mu, seed=seed)
    chosen: twin.Pairs | None = None
    as_written: twin.Pairs | None = None
    for j, pairs in enumerate(_variants(k, runs, n_holdout, mu=mu, seed=seed + 7919)):
        chosen = _take(choice == j, chosen, pairs)
        if j == 0:
            as_written = pairs
    assert chosen is not None and as_written is not None
    tested = {"cheap": ["optimized", "as-written"] if with_as_written else ["optimized"]}
    settings = decision.TestSettings(alpha=alpha, candidates=split.tests_on_pool(tested), min_controls=0)
    promoted = twin.decide(chosen, settings).verdict == twin.PASSED
    if with_as_written:
        promoted |= twin.decide(as_written, settings).verdict == twin.PASSED
    return Rate(float(promoted.mean()), runs)

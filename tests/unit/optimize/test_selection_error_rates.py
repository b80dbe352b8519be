"""False promotion at the margin: best-of-k on the same data against select-on-validation, qualify-on-holdout.

Thousands of runs of the numpy twin of the decision (selection_study); seeds are fixed, so every rate is
reproducible; limits carry a binomial slack of three standard errors.
"""

from __future__ import annotations

import math

import pytest

from unit.optimize import selection_study as study

RUNS = 2000
ALPHA = 0.05
RECORDS = 1200


def slack(rate: float = ALPHA, runs: int = RUNS) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def test_picking_the_best_of_8_variants_and_qualifying_it_on_the_same_data_promotes_more_than_alpha():
    naive = study.naive_best_of_k(k=8, runs=RUNS, n=RECORDS, alpha=ALPHA, seed=31)
    assert naive.promoted > ALPHA + slack()


@pytest.mark.parametrize("k", [1, 8])
def test_picking_on_validation_and_qualifying_on_the_holdout_keeps_false_promotion_at_most_alpha(k):
    outcome = study.select_then_holdout(k=k, runs=RUNS, n=RECORDS, alpha=ALPHA, seed=32)
    assert outcome.promoted <= ALPHA + slack()


def test_qualifying_the_candidate_as_written_beside_its_optimized_variant_splits_alpha_between_them():
    outcome = study.select_then_holdout(k=8, runs=RUNS, n=RECORDS, alpha=ALPHA, seed=33, with_as_written=True)
    assert outcome.promoted <= ALPHA + slack()

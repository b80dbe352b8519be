"""The no-peeking split and the alpha bookkeeping of the holdout pool."""

from __future__ import annotations

import random

import pytest

from assay.optimize import split

IDS = [f"r-{i:04d}" for i in range(1000)]


def test_the_split_is_a_function_of_seed_and_ids_not_of_file_order():
    shuffled = IDS[:]
    random.Random(3).shuffle(shuffled)
    assert split.split(shuffled, seed=7) == split.split(IDS, seed=7)
    assert split.split(shuffled, seed=7).digest == split.split(IDS, seed=7).digest


def test_the_parts_have_the_stated_sizes_and_cover_every_id_once():
    parts = split.split(IDS, seed=7, validation_share=0.2, holdout_share=0.4)
    assert parts.sizes == {"train": 400, "validation": 200, "holdout": 400}
    every = parts.train + parts.validation + parts.holdout
    assert sorted(every) == IDS
    assert parts.status()["sizes"] == parts.sizes


def test_another_seed_gives_another_split():
    a, b = split.split(IDS, seed=1), split.split(IDS, seed=2)
    assert set(a.holdout) != set(b.holdout)
    assert a.digest != b.digest
    overlap = len(set(a.holdout) & set(b.holdout)) / len(a.holdout)
    assert 0.3 < overlap < 0.5  # independent draws of 40% overlap by about 40%


def test_parts_are_not_the_file_order():
    parts = split.split(IDS, seed=7)
    assert list(parts.holdout) != sorted(parts.holdout)


def test_a_record_id_names_its_part():
    parts = split.split(IDS, seed=7)
    assert parts.part_of(parts.holdout[0]) == "holdout"
    assert parts.part_of(parts.train[-1]) == "train"
    with pytest.raises(KeyError):
        parts.part_of("missing")


@pytest.mark.parametrize(
    ("ids", "shares", "names"),
    [
        (["a", "b", "a"], {}, "repeats"),
        (["a", "b"], {}, "every part"),
        (IDS, {"holdout_share": 0.0}, "holdoutShare"),
        (IDS, {"validation_share": 0.5, "holdout_share": 0.5}, "leave records to train on"),
    ],
)
def test_a_split_that_cannot_be_made_says_why(ids, shares, names):
    with pytest.raises(split.SplitError, match=names):
        split.split(ids, seed=1, **shares)


def test_alpha_is_divided_over_every_variant_qualified_on_the_pool():
    qualified = {"cheap": ["as-written", "optimized"], "cheaper": ["optimized"]}
    assert split.tests_on_pool(qualified) == 3
    assert split.per_test_alpha(0.05, qualified) == pytest.approx(0.05 / 3)


@pytest.mark.parametrize(
    ("qualified", "names"),
    [({"cheap": []}, "no variant"), ({"cheap": ["a", "a"]}, "twice"), ({}, "no test")],
)
def test_a_pool_without_a_clear_count_of_tests_is_refused(qualified, names):
    with pytest.raises(split.SplitError, match=names):
        split.tests_on_pool(qualified)

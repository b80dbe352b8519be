"""The pre-registered order: a seeded permutation with controls at seed-chosen positions, capped at
maxSamples pairs, partitioned across shards; and the deterministic degradations controls use."""

from __future__ import annotations

import collections

import pytest

from assay.evaluator import dataset, plan


def records(n: int) -> list[dataset.Record]:
    return [dataset.Record(id=f"r{i}", messages=[{"role": "user", "content": f"q{i}"}], line=i + 1) for i in range(n)]


def ids(slots: list[plan.Slot]) -> list[tuple[str, str | None]]:
    return [(s.record.id, s.control_kind) for s in slots]


def test_same_seed_gives_the_same_sequence_and_another_seed_another():
    first = plan.build_plan(records(200), seed=1, control_share=0.1, max_samples=1000)
    again = plan.build_plan(records(200), seed=1, control_share=0.1, max_samples=1000)
    other = plan.build_plan(records(200), seed=2, control_share=0.1, max_samples=1000)
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_pairs_are_a_permutation_of_the_records_and_positions_are_consecutive():
    slots = plan.build_plan(records(200), seed=3, control_share=0.1, max_samples=1000)
    assert [s.seq for s in slots] == list(range(len(slots)))
    pair_ids = [s.record.id for s in slots if not s.control]
    assert sorted(pair_ids) == sorted(r.id for r in records(200))
    assert pair_ids != [r.id for r in records(200)]
    assert not slots[-1].control  # the sequence ends with its last pair


def test_control_positions_depend_only_on_seed_and_position():
    small = plan.build_plan(records(50), seed=9, control_share=0.2, max_samples=1000)
    large = plan.build_plan(records(400), seed=9, control_share=0.2, max_samples=1000)
    assert [s.control for s in small] == [s.control for s in large[: len(small)]]
    assert [s.seq for s in large if s.control] == [
        p for p in range(len(large)) if plan.is_control(seed=9, position=p, share=0.2)
    ]


def test_control_share_is_respected_on_average():
    slots = plan.build_plan(records(2000), seed=4, control_share=0.08, max_samples=100_000)
    share = sum(s.control for s in slots) / len(slots)
    assert 0.065 < share < 0.095
    kinds = collections.Counter(s.control_kind for s in slots if s.control)
    assert set(kinds) == {"truncated", "shuffled", "other"}
    assert all(s.other is not None and s.other.id != s.record.id for s in slots if s.control_kind == "other")


def test_no_controls_when_the_share_is_zero():
    assert not any(s.control for s in plan.build_plan(records(100), seed=4, control_share=0, max_samples=1000))


def test_sequence_is_capped_at_max_samples_pairs_plus_their_controls():
    slots = plan.build_plan(records(300), seed=5, control_share=0.1, max_samples=120)
    assert sum(not s.control for s in slots) == 120
    assert len(slots) > 120
    uncapped = plan.build_plan(records(300), seed=5, control_share=0.1, max_samples=1000)
    assert ids(slots) == ids(uncapped[: len(slots)])


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_shards_partition_the_sequence_by_position_modulo_shards(shards):
    slots = plan.build_plan(records(101), seed=6, control_share=0.1, max_samples=1000)
    parts = [plan.shard_slots(slots, shard=k, shards=shards) for k in range(shards)]
    for k, part in enumerate(parts):
        assert [s.seq for s in part] == list(range(k, len(slots), shards))
    assert sorted(s.seq for part in parts for s in part) == list(range(len(slots)))


ANSWER = "The cache limits the queue. The shard feeds the index. The token guards the budget. Done here."


def test_truncated_control_keeps_about_forty_percent_of_the_sentences():
    degraded, kind = plan.degrade(ANSWER, "truncated", seed=1, position=3)
    assert kind == "truncated"
    assert degraded == "The cache limits the queue. The shard feeds the index."


def test_truncating_a_one_sentence_answer_cuts_words():
    degraded, _ = plan.degrade("one two three four five six seven eight nine ten", "truncated", seed=1, position=3)
    assert degraded == "one two three four"


def test_shuffled_control_reorders_the_same_sentences_deterministically():
    degraded, kind = plan.degrade(ANSWER, "shuffled", seed=1, position=3)
    assert kind == "shuffled"
    assert degraded != ANSWER
    assert sorted(plan.split_sentences(degraded)) == sorted(plan.split_sentences(ANSWER))
    assert plan.degrade(ANSWER, "shuffled", seed=1, position=3) == (degraded, kind)


def test_other_control_uses_another_records_answer_and_falls_back_when_it_is_the_same():
    assert plan.degrade(ANSWER, "other", seed=1, position=3, other_text="Something else.") == (
        "Something else.",
        "other",
    )
    assert plan.degrade(ANSWER, "other", seed=1, position=3, other_text=ANSWER)[1] == "truncated"


def test_an_answer_that_cannot_be_shuffled_is_truncated_instead():
    assert plan.degrade("Yes", "shuffled", seed=1, position=0) == ("", "truncated")

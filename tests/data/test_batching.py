"""The epoch plan: DDP partitions, dynamic batches, determinism, resume."""

from __future__ import annotations

import random

import pytest

from gpt_sovits_train.data.batching import BatchingConfig, plan_epoch, rank_range


def make_records(count: int = 257, shards: int = 9, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"key": f"k{i}", "shard": f"train/s{i % shards}.tar", "len": rng.randint(20, 400)} for i in range(count)]


def length(record: dict) -> int:
    return record["len"]


CONFIG = BatchingConfig(max_tokens=2000, max_batch_size=16, max_item_length=380, window=64)


def keys(batches: list[list[dict]]) -> list[str]:
    return [record["key"] for batch in batches for record in batch]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_are_disjoint_complete_and_equal_in_batches(world_size):
    records = make_records()
    plans = [plan_epoch(records, length, CONFIG, seed=7, epoch=3, rank=r, world_size=world_size)
             for r in range(world_size)]
    seen = [keys(plan) for plan in plans]
    expected = {r["key"] for r in records if r["len"] <= CONFIG.max_item_length}
    assert sorted(k for rank in seen for k in rank) == sorted(expected)  # complete, and nothing twice
    assert len({len(plan) for plan in plans}) == 1  # same number of batches on every rank: no DDP hang


def test_batches_respect_the_padded_budget_and_drop_overlong_items():
    records = make_records()
    plan = plan_epoch(records, length, CONFIG, seed=0, epoch=0)
    for batch in plan:
        assert len(batch) * max(length(r) for r in batch) <= CONFIG.max_tokens
        assert len(batch) <= CONFIG.max_batch_size
    dropped = {r["key"] for r in records if r["len"] > CONFIG.max_item_length}
    assert dropped and not dropped & set(keys(plan))


def test_plan_is_a_pure_function_of_seed_and_epoch():
    records = make_records()
    first = keys(plan_epoch(records, length, CONFIG, seed=1, epoch=2, rank=1, world_size=2))
    again = keys(plan_epoch(list(records), length, CONFIG, seed=1, epoch=2, rank=1, world_size=2))
    other_epoch = keys(plan_epoch(records, length, CONFIG, seed=1, epoch=3, rank=1, world_size=2))
    other_seed = keys(plan_epoch(records, length, CONFIG, seed=2, epoch=2, rank=1, world_size=2))
    assert first == again
    assert first != other_epoch and first != other_seed


def test_unshuffled_plan_keeps_shard_order_per_rank():
    records = make_records(count=40, shards=4)
    config = BatchingConfig(max_tokens=100000, max_batch_size=1000, max_item_length=1000, window=1000, shuffle=False)
    plan = plan_epoch(records, length, config, seed=0, epoch=0, rank=0, world_size=2)
    assert sorted(keys(plan)) == sorted(r["key"] for r in records if r["shard"] in {"train/s0.tar", "train/s1.tar"})


def test_rank_range_covers_everything_once():
    assert [rank_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]


def test_budget_smaller_than_longest_item_is_rejected():
    with pytest.raises(ValueError, match="max_tokens"):
        BatchingConfig(max_tokens=100, max_item_length=200)


def test_more_ranks_than_items_still_gives_every_rank_a_batch():
    records = make_records(count=3)
    config = BatchingConfig(max_tokens=2000, max_batch_size=16, max_item_length=400, window=64)
    plans = [plan_epoch(records, length, config, seed=0, epoch=0, rank=r, world_size=5) for r in range(5)]
    assert all(len(plan) == 1 for plan in plans)
    assert {r["key"] for r in records} <= {record["key"] for plan in plans for batch in plan for record in batch}

"""The epoch plan: which samples form which batch, on which rank, in which order.

The plan is a pure function of (index, seed, epoch, rank, world_size) computed from the prepare index
(per-sample lengths), without opening a shard. That is what makes three things exact:

* DDP: the epoch's sample sequence is cut into ``world_size`` contiguous ranges (disjoint, complete), and
  every rank gets the same number of batches (ranks short of batches split their largest ones), so no rank
  waits forever in a collective at the end of an epoch.
* Dynamic batching: batches are filled up to ``max_tokens`` of *padded* cost (batch size × longest item), so a
  batch of long clips is small and a batch of short ones is large; items longer than ``max_item_length`` are
  left out, so one long clip can never run a GPU out of memory. The DataModules derive that cap from the
  duration policy (``constants.MAX_CLIP_SECONDS``) unless it is set, and count and report what it leaves out.
* Resume: skipping the first N batches of an epoch is slicing a list.

Shuffling happens at two levels, standing in for a shuffle buffer: the shard order is shuffled per epoch,
then samples are bucketed by length inside windows of ``window`` consecutive samples and the resulting
batches are shuffled inside each window (windows keep reads sequential over shards).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class BatchingConfig:
    max_tokens: int = 20000  # padded cost budget per batch: len(batch) * max(length)
    max_batch_size: int = 64
    max_item_length: int | None = None  # longer items are left out (OOM guard); None: no cap
    window: int = 512  # samples bucketed together
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.max_item_length is not None and self.max_item_length > self.max_tokens:
            raise ValueError(
                f"max_item_length ({self.max_item_length}) exceeds max_tokens ({self.max_tokens}): the longest "
                "allowed item would not fit in a batch; raise max_tokens or lower max_item_length"
            )


def too_long(record: Record, length_of: Callable[[Record], int], config: BatchingConfig) -> bool:
    """Whether the plan leaves ``record`` out for being longer than ``config.max_item_length``."""
    return config.max_item_length is not None and length_of(record) > config.max_item_length


def _rng(*parts: object) -> random.Random:
    """Independent, platform-stable RNG per (seed, epoch, ...) tuple (Python's hash() is salted per process)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def epoch_sequence(records: Sequence[Record], seed: int, epoch: int, shuffle: bool) -> list[Record]:
    """All records of the epoch in reading order: shards (maybe shuffled), each in its stored order."""
    by_shard: dict[str, list[Record]] = {}
    for record in records:
        by_shard.setdefault(record["shard"], []).append(record)
    shards = sorted(by_shard)
    if shuffle:
        _rng(seed, epoch, "shards").shuffle(shards)
    return [record for shard in shards for record in by_shard[shard]]


def rank_range(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous [start, end) of ``total`` items for ``rank``; sizes differ by at most one."""
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def batch_window(
    items: list[Record], length_of: Callable[[Record], int], config: BatchingConfig, rng: random.Random
) -> list[list[Record]]:
    """Bucket one window by length and cut it into batches under the padded-cost budget."""
    items = list(items)
    if config.shuffle:
        rng.shuffle(items)  # random order among equal lengths
    items.sort(key=length_of)
    batches: list[list[Record]] = []
    current: list[Record] = []
    for item in items:
        longest = max(length_of(item), length_of(current[-1]) if current else 0)
        if current and ((len(current) + 1) * longest > config.max_tokens or len(current) >= config.max_batch_size):
            batches.append(current)
            current = []
        current.append(item)
    if current:
        batches.append(current)
    if config.shuffle:
        rng.shuffle(batches)
    return batches


def _rank_batches(
    sequence: list[Record], length_of: Callable[[Record], int], config: BatchingConfig, seed: int, epoch: int,
    rank: int,
) -> list[list[Record]]:
    batches = []
    for window_start in range(0, len(sequence), config.window):
        rng = _rng(seed, epoch, rank, window_start)
        batches.extend(batch_window(sequence[window_start : window_start + config.window], length_of, config, rng))
    return batches


def _equalize(batches: list[list[Record]], target: int) -> list[list[Record]]:
    """Split the largest batches until there are ``target`` (keeps every sample exactly once when possible)."""
    batches = list(batches)
    while len(batches) < target:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]))
        batch = batches[largest]
        if len(batch) < 2:
            batches.append(list(batch))  # fewer samples than batches on another rank: repeat one (rare, tiny data)
            continue
        middle = len(batch) // 2
        batches[largest : largest + 1] = [batch[:middle], batch[middle:]]
    return batches


def plan_epoch(
    records: Sequence[Record],
    length_of: Callable[[Record], int],
    config: BatchingConfig,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[Record]]:
    """This rank's batches for ``epoch``, in the order they must be consumed."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    usable = [record for record in records if not too_long(record, length_of, config)]
    sequence = epoch_sequence(usable, seed, epoch, config.shuffle)
    if not sequence:
        raise ValueError("no item is short enough to batch: every length exceeds max_item_length")
    per_rank = []
    for other in range(world_size):
        start, end = rank_range(len(sequence), other, world_size)
        # More ranks than items (a tiny validation split on many GPUs): borrow one item rather than hang DDP.
        items = sequence[start:end] or [sequence[other % len(sequence)]]
        per_rank.append(_rank_batches(items, length_of, config, seed, epoch, other))
    target = max(len(batches) for batches in per_rank)
    return _equalize(per_rank[rank], target)

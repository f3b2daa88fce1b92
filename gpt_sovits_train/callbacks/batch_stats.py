"""How much work one batch is: samples, model tokens and seconds of audio, for both stages' batch formats.

Throughput in samples/s alone is misleading for speech (a batch of 2 s clips and one of 10 s clips cost very
different amounts), so the monitors also report tokens/s and audio-seconds/s computed from the length fields
that the collators put in every batch (see docs/design.md, "Batches").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gpt_sovits_train.constants import SAMPLE_RATE, SEMANTIC_HZ


@dataclass(frozen=True)
class BatchStats:
    """Work contained in one batch."""

    samples: int
    tokens: int
    audio_seconds: float


def _total(lengths: Any) -> int:
    return int(lengths.sum().item()) if isinstance(lengths, torch.Tensor) else int(sum(lengths))


def batch_stats(batch: Any) -> BatchStats | None:
    """Stats for a GPT or SoVITS batch dict; ``None`` for a format this function does not know."""
    if not isinstance(batch, dict):
        return None
    if "semantic_ids_len" in batch:  # GPT stage: tokens = phonemes in + semantic tokens predicted
        semantic = _total(batch["semantic_ids_len"])
        phonemes = _total(batch["phoneme_ids_len"]) if "phoneme_ids_len" in batch else 0
        return BatchStats(len(batch["semantic_ids_len"]), semantic + phonemes, semantic / SEMANTIC_HZ)
    if "wav_lengths" in batch:  # SoVITS stage: tokens = 50 Hz SSL frames
        frames = _total(batch["ssl_lengths"]) if "ssl_lengths" in batch else 0
        return BatchStats(len(batch["wav_lengths"]), frames, _total(batch["wav_lengths"]) / SAMPLE_RATE)
    return None

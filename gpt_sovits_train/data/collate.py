"""Pad lists of schema samples into the batch dicts of docs/design.md (v2's padding conventions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gpt_sovits_train.audio.spectrogram import linear_spectrogram
from gpt_sovits_train.data.schema import BERT_DIM

SEMANTIC_EOS = 1024  # v2 pads semantic ids with EOS
HOP_32K = 640  # one SSL/spec frame per 640 samples at 32 kHz


def pad_stack(tensors: Sequence[torch.Tensor], value: float = 0.0) -> torch.Tensor:
    """Right-pad along the last dimension and stack: ``[B, ..., max_len]``."""
    longest = max(t.shape[-1] for t in tensors)
    return torch.stack([torch.nn.functional.pad(t, (0, longest - t.shape[-1]), value=value) for t in tensors])


def lengths(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.tensor([t.shape[-1] for t in tensors], dtype=torch.long)


def semantic_ids(sample: dict[str, Any], extractor: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    if sample.get("semantic") is not None:
        return sample["semantic"].long()
    if extractor is None:
        raise ValueError(
            f"sample {sample['key']} has no semantic tokens: prepare with features.semantic set, or give the GPT "
            "DataModule a semantic_extractor (conf/data/gpt.yaml)"
        )
    return extractor(sample["ssl"].float()).long().reshape(-1)


def collate_gpt(
    samples: Sequence[dict[str, Any]], semantic_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """GPT batch: phonemes padded with 0, BERT zero-padded (zeros when absent), semantic padded with EOS."""
    phones = [sample["phone_ids"].long() for sample in samples]
    berts = [
        sample["bert"].float() if sample.get("bert") is not None else torch.zeros(BERT_DIM, p.numel())
        for sample, p in zip(samples, phones)
    ]
    semantic = [semantic_ids(sample, semantic_extractor) for sample in samples]
    return {
        "keys": [sample["key"] for sample in samples],
        "phoneme_ids": pad_stack(phones, 0),
        "phoneme_ids_len": lengths(phones),
        "bert_feature": pad_stack(berts, 0.0),
        "semantic_ids": pad_stack(semantic, SEMANTIC_EOS),
        "semantic_ids_len": lengths(semantic),
    }


def aligned_sovits_item(sample: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SSL, linear spectrogram and waveform cut to a common frame count T (wav to T*640 samples).

    HuBERT can give one frame fewer than the spectrogram; like v2 the last SSL frame is then repeated.
    """
    audio = sample["audio"].float()
    spec = linear_spectrogram(audio.unsqueeze(0))[0]
    ssl = sample["ssl"].float()
    if ssl.shape[-1] == spec.shape[-1] - 1:
        ssl = torch.nn.functional.pad(ssl.unsqueeze(0), (0, 1), mode="replicate")[0]
    frames = min(ssl.shape[-1], spec.shape[-1], audio.numel() // HOP_32K)
    return ssl[:, :frames], spec[:, :frames], audio[: frames * HOP_32K]


def collate_sovits(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """SoVITS batch: SSL, spectrogram, waveform and phonemes, all zero-padded with their lengths."""
    aligned = [aligned_sovits_item(sample) for sample in samples]
    phones = [sample["phone_ids"].long() for sample in samples]
    batch: dict[str, Any] = {
        "keys": [sample["key"] for sample in samples],
        "ssl": pad_stack([ssl for ssl, _, _ in aligned]),
        "ssl_lengths": lengths([ssl for ssl, _, _ in aligned]),
        "spec": pad_stack([spec for _, spec, _ in aligned]),
        "spec_lengths": lengths([spec for _, spec, _ in aligned]),
        "wav": pad_stack([wav.unsqueeze(0) for _, _, wav in aligned]),
        "wav_lengths": lengths([wav for _, _, wav in aligned]),
        "text": pad_stack(phones, 0),
        "text_lengths": lengths(phones),
    }
    if all(sample.get("speaker_embedding") is not None for sample in samples):
        batch["speaker_embedding"] = torch.stack([sample["speaker_embedding"].float() for sample in samples])
    if all(sample.get("encodec") is not None for sample in samples):
        batch["encodec"] = pad_stack([sample["encodec"].long() for sample in samples])
        batch["encodec_lengths"] = lengths([sample["encodec"] for sample in samples])
    return batch

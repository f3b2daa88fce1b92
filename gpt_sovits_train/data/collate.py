"""Pad lists of schema samples into the batch dicts of docs/design.md (v2's padding conventions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gpt_sovits_train.audio.spectrogram import linear_spectrogram
from gpt_sovits_train.constants import BERT_DIM, HOP, SEMANTIC_EOS
from gpt_sovits_train.features.codec import codec_content_tokens

TOKEN_SOURCES = ("semantic", "encodec")
CODEC_PREPARE_HINT = (
    "prepare the shards with an EnCodec tokenizer: features.codec={_target_: "
    "gpt_sovits_train.features.codec.EncodecTokenizer, model: <folder>} (demos: prepare/features@features="
    "random_init_encodec)"
)


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


def codec_ids(sample: dict[str, Any]) -> torch.Tensor:
    """25 Hz EnCodec content tokens of a sample (the same rule the SoVITS stage and inference use)."""
    if sample.get("encodec") is None:
        raise KeyError(f"sample {sample['key']} has no EnCodec codes; {CODEC_PREPARE_HINT}")
    return codec_content_tokens(sample["encodec"])


def collate_gpt(
    samples: Sequence[dict[str, Any]],
    semantic_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
    token_source: str = "semantic",
) -> dict[str, torch.Tensor]:
    """GPT batch: phonemes padded with 0, BERT zero-padded (zeros when absent), speech tokens padded with EOS.

    ``token_source`` picks the speech tokens the GPT stage models: ``semantic`` (v2: HuBERT + VQ codes) or
    ``encodec`` (EnCodec codebook 0 at 25 Hz, for the EnCodec SoVITS preset). Both use ids 0..1023 with EOS
    1024, so the batch keys and the model are the same.
    """
    if token_source not in TOKEN_SOURCES:
        raise ValueError(f"token_source must be one of {TOKEN_SOURCES}, got {token_source!r}")
    phones = [sample["phone_ids"].long() for sample in samples]
    berts = [
        sample["bert"].float() if sample.get("bert") is not None else torch.zeros(BERT_DIM, p.numel())
        for sample, p in zip(samples, phones)
    ]
    if token_source == "encodec":
        semantic = [codec_ids(sample) for sample in samples]
    else:
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
    frames = min(ssl.shape[-1], spec.shape[-1], audio.numel() // HOP)
    return ssl[:, :frames], spec[:, :frames], audio[: frames * HOP]


def aligned_content_codes(encodec: torch.Tensor, frames: int) -> torch.Tensor:
    """25 Hz EnCodec content tokens brought to exactly ``ceil(frames / 2)`` for ``frames`` spectrogram frames.

    EnCodec rounds its frame count up (24 kHz, hop 320) while the spectrogram/SSL count rounds down, so the two
    can differ by a frame or two; trimming (or repeating the last token) here means the generator always gets
    ``2 * T25`` equal to ``frames`` or ``frames + 1`` and the match is exact within the batch.
    """
    tokens = codec_content_tokens(encodec)
    wanted = -(-frames // 2)
    if tokens.numel() < wanted:
        tokens = torch.cat([tokens, tokens[-1:].expand(wanted - tokens.numel())])
    return tokens[:wanted]


def collate_sovits(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """SoVITS batch: SSL, spectrogram, waveform and phonemes, all zero-padded with their lengths.

    Optional per-sample features are added when every sample has them: ``speaker_embedding`` [B, 192]
    (ECAPA), and from ``encodec`` both the raw codes (``encodec``) and the 25 Hz content tokens the
    EnCodec generator trains on (``content_codes`` [B, T25], zero-padded, with ``content_code_lengths``).
    """
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
        content = [
            aligned_content_codes(sample["encodec"], int(frames))
            for sample, frames in zip(samples, batch["spec_lengths"])
        ]
        batch["content_codes"] = pad_stack(content, 0)
        batch["content_code_lengths"] = lengths(content)
    return batch

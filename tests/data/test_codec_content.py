"""EnCodec codes → SoVITS content tokens (features.codec.codec_content_tokens) and their SoVITS batch."""

from __future__ import annotations

import math

import pytest
import torch

from gpt_sovits_train.data.collate import aligned_content_codes, collate_gpt, collate_sovits
from gpt_sovits_train.features.codec import codec_content_tokens


def test_keeps_codebook_zero_middle_frame_of_each_triple() -> None:
    codes = torch.stack([torch.arange(9), torch.arange(100, 109)])  # [n_q=2, T75=9]
    assert codec_content_tokens(codes).tolist() == [1, 4, 7]


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 74, 75, 76])
def test_length_is_ceil_of_a_third_and_tail_uses_last_frame(frames: int) -> None:
    codes = torch.arange(frames).unsqueeze(0)
    tokens = codec_content_tokens(codes)
    assert tokens.shape == (math.ceil(frames / 3),)
    assert tokens.dtype == torch.long
    assert int(tokens[-1]) == min(3 * (len(tokens) - 1) + 1, frames - 1)


def test_one_dimensional_input_is_codebook_zero() -> None:
    assert codec_content_tokens(torch.tensor([5, 6, 7, 8])).tolist() == [6, 8]


def test_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="n_q"):
        codec_content_tokens(torch.zeros(1, 2, 3, dtype=torch.long))


def _sample(key: str, seconds: float, seed: int) -> dict:
    """A schema-like SoVITS sample: 32 kHz audio, 50 Hz SSL, phonemes, EnCodec codes at 75 Hz."""
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * 32000)
    ssl_frames = samples // 640
    codec_frames = math.ceil(seconds * 24000 / 320)
    return {
        "key": key,
        "audio": torch.randn(samples, generator=generator) * 0.1,
        "ssl": torch.randn(768, ssl_frames, generator=generator),
        "phone_ids": torch.randint(1, 100, (7,), generator=generator),
        "encodec": torch.randint(0, 1024, (2, codec_frames), generator=generator),
        "speaker_embedding": torch.randn(192, generator=generator),
    }


def test_collate_adds_content_codes_aligned_with_spectrogram() -> None:
    samples = [_sample("a", 1.3, 0), _sample("b", 0.97, 1)]
    batch = collate_sovits(samples)
    assert batch["content_codes"].dtype == torch.long
    assert batch["content_codes"].shape[0] == 2
    for i, sample in enumerate(samples):
        length, frames = int(batch["content_code_lengths"][i]), int(batch["spec_lengths"][i])
        # one 25 Hz token per two spectrogram frames (the last one may cover a single frame)
        assert length == math.ceil(frames / 2)
        tokens = codec_content_tokens(sample["encodec"])
        shared = min(length, tokens.numel())
        assert torch.equal(batch["content_codes"][i, :shared], tokens[:shared])
        assert (batch["content_codes"][i, shared:length] == tokens[-1]).all()
    assert batch["speaker_embedding"].shape == (2, 192)


def test_aligned_content_codes_trims_or_repeats_the_last_token() -> None:
    codes = torch.arange(30).unsqueeze(0)  # 10 content tokens: 1, 4, ..., 28
    assert aligned_content_codes(codes, 15).tolist() == [1, 4, 7, 10, 13, 16, 19, 22]
    assert aligned_content_codes(codes, 23).tolist()[-3:] == [28, 28, 28]


def test_collate_without_encodec_has_no_content_codes() -> None:
    samples = [_sample("a", 0.8, 0)]
    del samples[0]["encodec"]
    assert "content_codes" not in collate_sovits(samples)


def test_collate_gpt_models_encodec_tokens_when_asked() -> None:
    samples = [_sample("a", 1.3, 0), _sample("b", 0.97, 1)]
    for sample in samples:
        sample["semantic"] = torch.zeros(3, dtype=torch.long)
    batch = collate_gpt(samples, token_source="encodec")
    for i, sample in enumerate(samples):
        tokens = codec_content_tokens(sample["encodec"])
        assert int(batch["semantic_ids_len"][i]) == tokens.numel()
        assert torch.equal(batch["semantic_ids"][i, : tokens.numel()], tokens)
    assert int(batch["semantic_ids"].max()) <= 1024  # codes 0..1023, padding with EOS 1024


def test_collate_gpt_encodec_without_codes_names_the_prepare_option() -> None:
    sample = _sample("a", 0.8, 0)
    del sample["encodec"]
    with pytest.raises(KeyError, match=r"features\.codec"):
        collate_gpt([sample], token_source="encodec")
    with pytest.raises(ValueError, match="token_source"):
        collate_gpt([sample], token_source="mel")

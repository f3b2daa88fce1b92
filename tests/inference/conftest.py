"""Small random-initialized models for inference/evaluation tests (same classes as real checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def build_tiny_ctc_asr(folder: Path) -> Path:
    """Save a random wav2vec2 CTC model with processor: the transformers ASR pipeline runs it like a real one."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2} | {ch: i + 3 for i, ch in enumerate("abcdefghijklmnopqrstuvwxyz")}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).eval().save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_asr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ctc_asr(tmp_path_factory.mktemp("asr") / "wav2vec2_ctc")


@pytest.fixture(scope="session")
def random_feature_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from gpt_sovits_train.features.random_init import make_all

    return make_all(tmp_path_factory.mktemp("features"))

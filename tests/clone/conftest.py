"""Fixtures for the cloning tests: a small random-initialized transformers ASR model saved locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def build_random_ctc_asr(folder: Path) -> Path:
    """Save a tiny random-initialized wav2vec2 CTC model + tokenizer + feature extractor to ``folder``.

    The same classes as a real wav2vec2 ASR checkpoint, so ``TransformersASR`` runs exactly the
    code path a user's model would; its output text is meaningless but genuinely produced.
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz'")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2} | {ch: i + 3 for i, ch in enumerate(letters)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                     word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=False)
    config = Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, pad_token_id=0, do_stable_layer_norm=True, feat_extract_norm="layer",
    )
    Wav2Vec2ForCTC(config).eval().save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def random_ctc_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_ctc_asr(tmp_path_factory.mktemp("asr") / "tiny_wav2vec2_ctc")


REPO_ROOT = Path(__file__).resolve().parents[2]


def make_raw_recording(path: Path, speaker: str = "ava", language: str = "en", max_clips: int = 8,
                       seed: int = 0) -> tuple[Path, list[str]]:
    """Concatenate one demo speaker's clips into one long noisy 44.1 kHz stereo file with 1-2.5 s pauses.

    Stands in for a user's raw phone recording: other rate, two channels, long pauses, background noise.
    Returns the file and the true texts in order.
    """
    import numpy as np
    import soundfile as sf

    from gpt_sovits_train.audio.io import resample

    demo = REPO_ROOT / "data" / "demo"
    rows = [line.split("|", 3) for line in (demo / "demo.list").read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r[1] == speaker and r[2] == language][:max_clips]
    rng = np.random.default_rng(seed)
    rate = 44100
    parts, texts = [np.zeros(rate)], []
    for rel, _spk, _lang, text in rows:
        wav, sr = sf.read(demo / rel, dtype="float32")
        parts += [resample(wav, sr, rate).numpy(), np.zeros(int(rate * rng.uniform(1.0, 2.5)))]
        texts.append(text)
    mono = np.concatenate(parts)
    mono = mono + 0.003 * rng.standard_normal(mono.size)
    sf.write(path, np.stack([mono, mono], axis=1).astype(np.float32), rate)
    return path, texts


@pytest.fixture(scope="session")
def raw_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return make_raw_recording(tmp_path_factory.mktemp("raw") / "ava_raw.wav")

"""Fixtures for the cloning tests: a small random-initialized transformers ASR model saved locally."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import build_random_ctc_asr


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

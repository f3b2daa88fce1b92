"""Optional scorers from the ``eval`` extra; each test skips with the reason when its package is unavailable."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gpt_sovits_train.inference.evaluate import (
    available_extras,
    dnsmos_scores,
    pocketsphinx_transcript,
    resemblyzer_similarity,
)

RATE = 32000
DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def _voiced(seconds: float = 2.0, f0: float = 140.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 2.5 * t))
    return (0.1 * harmonics * envelope).astype(np.float32)


def _require(name: str) -> None:
    if not available_extras()[name]:
        pytest.skip(f"{name} is not installed or not importable (pip install -e .[eval])")


@pytest.mark.slow
def test_dnsmos() -> None:
    _require("speechmos")
    scores = dnsmos_scores(_voiced(), RATE)
    assert set(scores) >= {"dnsmos_ovrl_mos", "dnsmos_sig_mos", "dnsmos_bak_mos"}
    assert all(1.0 <= v <= 5.0 for v in scores.values())


@pytest.mark.slow
def test_pocketsphinx_runs() -> None:
    _require("pocketsphinx")
    text = pocketsphinx_transcript(_voiced(), RATE)
    assert isinstance(text, str)
    assert pocketsphinx_transcript(_voiced(), RATE) == text  # decoding is deterministic
    # Real speech with a known text (the bundled espeak-ng demo corpus, 32 kHz): a wrong rate, scaling or sample
    # format turns the transcript into noise. Measured WER 0.50 on this line ("please go to the blue notes look back
    # on the second channel"); a tone or silence gives 1.0.
    import jiwer
    import soundfile as sf

    wav, rate = sf.read(DEMO / "ava" / "ava_001.flac", dtype="float32")
    heard = pocketsphinx_transcript(wav, rate)
    wer = jiwer.wer("please put the blue notebook back on the second shelf", heard)
    assert wer < 0.7 and {"blue", "second"} <= set(heard.split()), (wer, heard)


@pytest.mark.slow
def test_resemblyzer_similarity() -> None:
    _require("resemblyzer")
    same = resemblyzer_similarity(_voiced(), RATE, _voiced(), RATE)
    assert math.isclose(same, 1.0, abs_tol=1e-4)
    # A clip against itself passes with any encoder that returns a constant: also a near voice (f0 140 vs 150 Hz, other
    # length) against a far one (320 Hz). Measured: 0.95 and 0.55.
    near = resemblyzer_similarity(_voiced(2.0, 140.0), RATE, _voiced(3.0, 150.0), RATE)
    far = resemblyzer_similarity(_voiced(2.0, 140.0), RATE, _voiced(2.0, 320.0), RATE)
    assert near > 0.85 and far < 0.75, (near, far)

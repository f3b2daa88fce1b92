"""Optional scorers from the ``eval`` extra; each test skips with the reason when its package is unavailable."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpt_sovits_train.inference.evaluate import (
    available_extras,
    dnsmos_scores,
    pocketsphinx_transcript,
    resemblyzer_similarity,
)

RATE = 32000


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


@pytest.mark.slow
def test_resemblyzer_similarity() -> None:
    _require("resemblyzer")
    same = resemblyzer_similarity(_voiced(), RATE, _voiced(), RATE)
    assert math.isclose(same, 1.0, abs_tol=1e-4)

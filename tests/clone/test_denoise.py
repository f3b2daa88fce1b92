"""Spectral gating removes stationary noise and keeps the tone."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_sovits_train.clone.denoise import SpectralGateDenoiser

SR = 16000


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((estimate - clean) ** 2)))


def test_spectral_gate_raises_snr_of_a_gated_tone() -> None:
    t = np.arange(4 * SR) / SR
    clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype(np.float32)
    noisy = clean + 0.02 * np.random.default_rng(0).standard_normal(t.size).astype(np.float32)
    out = SpectralGateDenoiser()(noisy, SR)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert snr_db(clean, out) > snr_db(clean, noisy) + 6.0
    # The tone itself survives: its level changes by less than 1 dB.
    on = clean != 0
    assert abs(10 * np.log10(np.mean(out[on] ** 2) / np.mean(clean[on] ** 2))) < 1.0


def test_spectral_gate_rejects_bad_reduction() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        SpectralGateDenoiser(reduction=1.5)

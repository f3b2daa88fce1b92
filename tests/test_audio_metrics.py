"""Objective audio distances: zero for identical signals, larger for worse copies, symmetric inputs checked."""

import math

import pytest
import torch

from gpt_sovits_train.audio.metrics import mel_cepstral_distortion, multi_resolution_stft_distance


def _tone(f0: float, seconds: float = 0.5, sr: int = 32000) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return 0.3 * sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 5))


def test_identical_signals_have_zero_distance():
    wav = _tone(150.0)
    assert multi_resolution_stft_distance(wav, wav) == pytest.approx(0.0, abs=1e-6)
    assert mel_cepstral_distortion(wav, wav) == pytest.approx(0.0, abs=1e-4)


def test_distances_grow_with_degradation():
    wav = _tone(150.0)
    torch.manual_seed(0)
    slightly = wav + 0.003 * torch.randn_like(wav)
    badly = wav + 0.1 * torch.randn_like(wav)
    assert 0 < multi_resolution_stft_distance(slightly, wav) < multi_resolution_stft_distance(badly, wav)
    assert 0 < mel_cepstral_distortion(slightly, wav) < mel_cepstral_distortion(badly, wav)
    assert mel_cepstral_distortion(_tone(300.0), wav) > mel_cepstral_distortion(slightly, wav)


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        multi_resolution_stft_distance(torch.zeros(0), torch.zeros(10))

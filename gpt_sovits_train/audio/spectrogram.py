"""Linear and mel spectrograms with the exact framing GPT-SoVITS v2 trains on.

The SoVITS stage needs spectrograms that match v2's to the bit level (its posterior encoder
and style encoder were trained on them), so the framing is fixed: reflect-pad by
``(n_fft - hop) / 2`` on both sides, ``center=False``, Hann window, magnitude with a small
epsilon under the square root, and a Slaney-normalised mel filterbank (librosa's default).
The filterbank comes from torchaudio; windows and filterbanks are cached per device/dtype.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torchaudio.functional as AF

from gpt_sovits_train.constants import HOP, SAMPLE_RATE

MAGNITUDE_EPS = 1e-8  # v2 adds this under the square root of |STFT|^2
LOG_CLAMP = 1e-5  # v2 clamps before the log of mel energies


@lru_cache(maxsize=16)
def _hann(win_length: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(win_length, device=device, dtype=dtype)


@lru_cache(maxsize=16)
def _mel_basis(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None, device: str, dtype: torch.dtype
) -> torch.Tensor:
    fbanks = AF.melscale_fbanks(
        n_freqs=n_fft // 2 + 1,
        f_min=f_min,
        f_max=float(f_max) if f_max is not None else sample_rate / 2.0,
        n_mels=n_mels,
        sample_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return fbanks.T.contiguous().to(device=device, dtype=dtype)  # [n_mels, n_freqs]


def linear_spectrogram(
    wav: torch.Tensor, n_fft: int = 2048, hop_length: int = HOP, win_length: int = 2048
) -> torch.Tensor:
    """Magnitude spectrogram ``[B, n_fft//2+1, frames]`` of ``wav`` ``[B, samples]`` (or ``[B, 1, samples]``).

    One frame per ``hop_length`` samples (``frames = samples // hop_length`` for whole hops).
    """
    if wav.dim() == 3:
        wav = wav.squeeze(1)
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    pad = (n_fft - hop_length) // 2
    padded = torch.nn.functional.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = _hann(win_length, str(wav.device), wav.dtype)
    stft = torch.stft(
        padded,
        n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return torch.sqrt(stft.real.pow(2) + stft.imag.pow(2) + MAGNITUDE_EPS)


def spec_to_mel(
    spec: torch.Tensor,
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = 2048,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """Log-mel ``[B, n_mels, frames]`` from a linear magnitude spectrogram ``[B, n_freqs, frames]``."""
    basis = _mel_basis(sample_rate, n_fft, n_mels, f_min, f_max, str(spec.device), spec.dtype)
    return torch.log(torch.clamp(torch.matmul(basis, spec), min=LOG_CLAMP))


def mel_spectrogram(
    wav: torch.Tensor,
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = 2048,
    n_mels: int = 128,
    hop_length: int = HOP,
    win_length: int = 2048,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram of a waveform, v2 framing (see :func:`linear_spectrogram`)."""
    spec = linear_spectrogram(wav, n_fft=n_fft, hop_length=hop_length, win_length=win_length)
    return spec_to_mel(spec, sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)

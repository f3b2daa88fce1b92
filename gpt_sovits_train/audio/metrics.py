"""Objective distances between a generated and a reference waveform that need no pretrained model.

Used by SoVITS validation (every epoch, cheap) and by evaluation. Both compare aligned waveforms of the same
utterance, so they suit resynthesis checks (decode of an utterance's own codes), not free-running TTS.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

from gpt_sovits_train.audio.spectrogram import mel_spectrogram
from gpt_sovits_train.constants import SAMPLE_RATE

STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # (n_fft, hop, win)


def _trim_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = a.reshape(-1).float(), b.reshape(-1).float()
    n = min(a.numel(), b.numel())
    if n == 0:
        raise ValueError("cannot compare empty waveforms")
    return a[:n], b[:n]


def multi_resolution_stft_distance(generated: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over three STFT resolutions of spectral convergence + log-magnitude L1 (lower is better)."""
    gen, ref = _trim_pair(generated, reference)
    total = 0.0
    for n_fft, hop, win in STFT_RESOLUTIONS:
        window = torch.hann_window(win, device=gen.device)
        g = torch.stft(gen, n_fft, hop, win, window, return_complex=True).abs().clamp_min(1e-7)
        r = torch.stft(ref, n_fft, hop, win, window, return_complex=True).abs().clamp_min(1e-7)
        convergence = torch.linalg.norm(r - g) / torch.linalg.norm(r).clamp_min(1e-7)
        log_l1 = (r.log() - g.log()).abs().mean()
        total += float(convergence + log_l1)
    return total / len(STFT_RESOLUTIONS)


def mel_cepstral_distortion(
    generated: torch.Tensor, reference: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_mfcc: int = 13
) -> float:
    """Frame-aligned mel cepstral distortion in dB over coefficients 1..n_mfcc-1 (c0, the energy, is left out).

    Cepstra are the DCT of the v2 log-mel spectrogram, so the measure shares the training loss's framing.
    """
    gen, ref = _trim_pair(generated, reference)
    mel_g = mel_spectrogram(gen.unsqueeze(0), sample_rate=sample_rate)[0]
    mel_r = mel_spectrogram(ref.unsqueeze(0), sample_rate=sample_rate)[0]
    dct = AF.create_dct(n_mfcc, mel_g.shape[0], norm="ortho").to(mel_g)
    c_g, c_r = (dct.T @ mel_g)[1:], (dct.T @ mel_r)[1:]
    per_frame = torch.sqrt(2.0 * (c_g - c_r).pow(2).sum(0))
    return float(10.0 / math.log(10.0) * per_frame.mean())

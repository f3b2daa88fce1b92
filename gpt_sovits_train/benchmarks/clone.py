"""Speed of the cloning front end (no model weights needed): slicing, denoising, reference ranking.

Figures are real-time factors (seconds of compute per second of audio; lower is faster) on a
synthetic speech-like recording, so they are comparable between machines and runs.
"""

from __future__ import annotations

import time

import numpy as np

from gpt_sovits_train.audio.segment import EnergyVAD, pack_regions
from gpt_sovits_train.clone.denoise import SpectralGateDenoiser
from gpt_sovits_train.clone.reference import analyze_clip

RATE = 32000


def _recording(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic 'syllables' of 2-6 s separated by 0.5-2 s pauses, plus light noise."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0.0
    while total < seconds:
        speech, pause = rng.uniform(2, 6), rng.uniform(0.5, 2)
        t = np.arange(int(speech * RATE)) / RATE
        f0 = rng.uniform(120, 240) * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        parts += [sum(0.2 / k * np.sin(k * phase) for k in range(1, 6)), np.zeros(int(pause * RATE))]
        total += speech + pause
    wav = np.concatenate(parts)
    return (wav + 0.003 * rng.standard_normal(wav.size)).astype(np.float32)


def _timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def run_clone_frontend(quick: bool = False) -> dict:
    """RTF of energy VAD + packing, spectral-gate denoising and reference analysis on 10 s (quick) or 60 s."""
    seconds = 10.0 if quick else 60.0
    wav = _recording(seconds)
    audio_seconds = wav.size / RATE
    t_denoise, clean = _timed(SpectralGateDenoiser(), wav, RATE)
    t_vad, regions = _timed(EnergyVAD(), clean, RATE)
    t_pack, (kept, _short) = _timed(pack_regions, regions, clean, RATE)
    t_ref = 0.0
    for span in kept:
        elapsed, _ = _timed(analyze_clip, "clip", clean[span.start : span.end], RATE, "text")
        t_ref += elapsed
    return {
        "audio_seconds": round(audio_seconds, 2),
        "segments": len(kept),
        "denoise_rtf": t_denoise / audio_seconds,
        "vad_and_pack_rtf": (t_vad + t_pack) / audio_seconds,
        "reference_analysis_rtf": t_ref / audio_seconds,
    }

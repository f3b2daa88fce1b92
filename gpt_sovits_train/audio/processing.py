"""Signal measurements and clean-up shared by data preparation and the cloning workflow: frame levels, silence
trimming, clipping checks, loudness (LUFS). Slicing at pauses builds on these in :mod:`audio.segment`.

This is the one implementation (the cloning steps import it too). Every function takes a mono signal
``[samples]`` as a float ``torch.Tensor`` or ``np.ndarray`` and returns the same kind, so preparation (torch, any
device) and cloning (numpy) share the arithmetic. Levels are in dBFS (0 dB = full scale); loudness is
integrated loudness in LUFS (ITU-R BS.1770-4, gated) measured with ``pyloudnorm``, which weights frequencies the
way listeners hear them and ignores pauses, unlike a plain RMS. Resampling lives in :mod:`audio.io`.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

_EPS = 1e-10
Signal = TypeVar("Signal", torch.Tensor, np.ndarray)


def _tensor(wav: torch.Tensor | np.ndarray) -> torch.Tensor:
    return wav if isinstance(wav, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float64))


def _like(result: torch.Tensor, original: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    return result if isinstance(original, torch.Tensor) else result.cpu().numpy()


def frame_rms_db(wav: Signal, frame_length: int, hop_length: int) -> Signal:
    """RMS level of each frame in dBFS, ``[frames]``; a signal shorter than a frame gives one frame.

    Built from a cumulative sum of squares (float64), so overlapping hops cost O(n) and no frame copies.
    """
    x = _tensor(wav).to(torch.float64).reshape(-1)
    if x.numel() == 0:
        return _like(torch.zeros(0, dtype=torch.float64), wav)
    if x.numel() < frame_length:
        x = torch.nn.functional.pad(x, (0, frame_length - x.numel()))
    frames = 1 + (x.numel() - frame_length) // hop_length
    energy_sum = torch.cat([x.new_zeros(1), torch.cumsum(x * x, dim=0)])
    starts = torch.arange(frames, device=x.device) * hop_length
    energy = (energy_sum[starts + frame_length] - energy_sum[starts]) / frame_length
    levels = 10.0 * torch.log10(energy.clamp_min(_EPS))
    return levels.float() if isinstance(wav, torch.Tensor) else levels.cpu().numpy()


def peak_db(wav: torch.Tensor | np.ndarray) -> float:
    x = _tensor(wav)
    return float(20.0 * torch.log10(x.abs().max() + _EPS)) if x.numel() else float("-inf")


def rms_dbfs(wav: torch.Tensor | np.ndarray) -> float:
    """Whole-signal RMS level in dBFS."""
    x = _tensor(wav).to(torch.float64)
    return float(10.0 * math.log10(max(float(x.pow(2).mean()) if x.numel() else 0.0, _EPS)))


def is_silent(wav: torch.Tensor | np.ndarray, threshold_db: float = -50.0) -> bool:
    """True when even the loudest sample stays under ``threshold_db``: nothing to learn from."""
    return peak_db(wav) < threshold_db


def trim_silence(
    wav: Signal,
    sample_rate: int,
    threshold_db: float = -40.0,
    frame_seconds: float = 0.02,
    keep_seconds: float = 0.05,
) -> Signal:
    """Cut leading/trailing frames quieter than ``threshold_db`` below the clip's peak, keeping a short margin.

    The threshold is relative to the peak so that quiet recordings are trimmed as well as loud ones.
    A clip with no frame above the threshold is returned unchanged (the silence check reports it).
    """
    frame = max(1, int(frame_seconds * sample_rate))
    levels = _tensor(frame_rms_db(wav, frame, frame))
    loud = torch.nonzero(levels > peak_db(wav) + threshold_db).flatten()
    if loud.numel() == 0:
        return wav
    keep = int(keep_seconds * sample_rate)
    start = max(0, int(loud[0]) * frame - keep)
    end = min(len(wav), (int(loud[-1]) + 1) * frame + keep)
    return wav[start:end]


def clipped_fraction(wav: torch.Tensor | np.ndarray, threshold: float = 0.999) -> float:
    """Share of samples at or beyond ``threshold`` of full scale (a clipped recording has runs of them)."""
    x = _tensor(wav)
    if x.numel() == 0:
        return 0.0
    return float((x.abs() >= threshold).float().mean())


def loudness_lufs(wav: torch.Tensor | np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (``-inf`` for silence). Clips under the standard 400 ms block are measured
    with one block of their own length."""
    import pyloudnorm

    x = _tensor(wav).detach().to(torch.float64).cpu().numpy().reshape(-1)
    if x.size < 2:
        return float("-inf")
    meter = pyloudnorm.Meter(sample_rate, block_size=min(0.4, x.size / sample_rate))
    return float(meter.integrated_loudness(x))


def normalize_loudness(wav: Signal, sample_rate: int, target_lufs: float = -20.0, peak_limit: float = 0.95) -> Signal:
    """Scale to ``target_lufs`` integrated loudness, then back off so the peak never exceeds ``peak_limit``.

    Loudness rather than peak or RMS gives speakers a similar perceived level whatever their pauses; the peak
    limit avoids creating clipping that the model would learn. Silence is returned unchanged.
    """
    level = loudness_lufs(wav, sample_rate)
    if not math.isfinite(level):
        return wav
    gain = 10.0 ** ((target_lufs - level) / 20.0)
    peak = float(_tensor(wav).abs().max()) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return wav * gain if isinstance(wav, torch.Tensor) else (wav * gain).astype(np.float32)


def estimate_snr_db(wav: torch.Tensor | np.ndarray, sample_rate: int) -> float:
    """Rough SNR: loud-frame level minus quiet-frame level (90th vs 10th percentile of 20 ms frames).

    Good enough to rank clips of one speaker against each other, which is all it is used for.
    """
    frame = max(1, sample_rate // 50)
    levels = frame_rms_db(_tensor(wav), frame, frame // 2 or 1).cpu().numpy()
    if levels.size < 4:
        return 0.0
    return float(np.percentile(levels, 90) - np.percentile(levels, 10))

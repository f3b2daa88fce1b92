"""Small numpy signal helpers the cloning steps share (framing, levels, resampling).

Kept here, not in ``audio/``, because they are measurement helpers for deciding which parts
of a user's recording to keep; the canonical decode/resample/write path is ``audio/io.py``.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-10


def frame_rms_db(wav: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """RMS level of each frame in dBFS (``[n_frames]``); a signal shorter than one frame gives one frame."""
    wav = np.asarray(wav, dtype=np.float64)
    if wav.size == 0:
        return np.zeros(0)
    if wav.size < frame:
        wav = np.pad(wav, (0, frame - wav.size))
    n_frames = 1 + (wav.size - frame) // hop
    # Cumulative sum of squares gives every frame's energy in O(n) without building frames.
    csum = np.concatenate([[0.0], np.cumsum(wav * wav)])
    starts = np.arange(n_frames) * hop
    energy = (csum[starts + frame] - csum[starts]) / frame
    return 10.0 * np.log10(np.maximum(energy, EPS))


def rms_dbfs(wav: np.ndarray) -> float:
    """Whole-signal RMS level in dBFS."""
    wav = np.asarray(wav, dtype=np.float64)
    return float(10.0 * np.log10(max(float(np.mean(wav * wav)) if wav.size else 0.0, EPS)))


def clipped_fraction(wav: np.ndarray, level: float = 0.999) -> float:
    """Share of samples at or above ``level`` full scale: digital clipping leaves flat runs there."""
    wav = np.asarray(wav)
    return float(np.mean(np.abs(wav) >= level)) if wav.size else 0.0


def normalize_loudness(wav: np.ndarray, target_dbfs: float = -20.0, peak_limit: float = 0.95) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS on the speech-active frames, never letting the peak pass ``peak_limit``.

    Measuring only active frames stops long pauses from making quiet speakers look quieter.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.size == 0:
        return wav
    db = frame_rms_db(wav, 400, 160)
    active = db[db > np.percentile(db, 95) - 30.0] if db.size else db
    level = float(10 * np.log10(np.mean(10 ** (active / 10)))) if active.size else rms_dbfs(wav)
    gain = 10 ** ((target_dbfs - level) / 20)
    peak = float(np.max(np.abs(wav))) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return (wav * gain).astype(np.float32)


def resample(wav: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling through torchaudio (sinc interpolation)."""
    if orig_rate == new_rate:
        return np.asarray(wav, dtype=np.float32)
    import torch
    import torchaudio.functional as AF

    tensor = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    return AF.resample(tensor, orig_rate, new_rate).numpy()


def estimate_snr_db(wav: np.ndarray, sample_rate: int) -> float:
    """Rough SNR: loud-frame level minus quiet-frame level (90th vs 10th percentile of 20 ms frames).

    Good enough to rank clips of one speaker against each other, which is all it is used for.
    """
    frame = max(1, sample_rate // 50)
    db = frame_rms_db(wav, frame, frame // 2 or 1)
    if db.size < 4:
        return 0.0
    return float(np.percentile(db, 90) - np.percentile(db, 10))

"""Signal clean-up used by data preparation: silence trimming, loudness, clipping checks, slicing.

All functions take and return mono float32 tensors ``[samples]`` so they compose in any order and run on
whatever device the samples live on. Levels are in dBFS (0 dB = full scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_EPS = 1e-10


def frame_rms_db(wav: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """RMS level of each frame in dBFS, ``[frames]``; a signal shorter than a frame gives one frame."""
    if wav.numel() < frame_length:
        wav = torch.nn.functional.pad(wav, (0, frame_length - wav.numel()))
    frames = wav.unfold(0, frame_length, hop_length)
    return 10.0 * torch.log10(frames.pow(2).mean(dim=1) + _EPS)


def peak_db(wav: torch.Tensor) -> float:
    return float(20.0 * torch.log10(wav.abs().max() + _EPS)) if wav.numel() else float("-inf")


def is_silent(wav: torch.Tensor, threshold_db: float = -50.0) -> bool:
    """True when even the loudest sample stays under ``threshold_db``: nothing to learn from."""
    return peak_db(wav) < threshold_db


def trim_silence(
    wav: torch.Tensor,
    sample_rate: int,
    threshold_db: float = -40.0,
    frame_seconds: float = 0.02,
    keep_seconds: float = 0.05,
) -> torch.Tensor:
    """Cut leading/trailing frames quieter than ``threshold_db`` below the clip's peak, keeping a short margin.

    The threshold is relative to the peak so that quiet recordings are trimmed as well as loud ones.
    A clip with no frame above the threshold is returned unchanged (the silence check reports it).
    """
    frame = max(1, int(frame_seconds * sample_rate))
    levels = frame_rms_db(wav, frame, frame)
    loud = torch.nonzero(levels > peak_db(wav) + threshold_db).flatten()
    if loud.numel() == 0:
        return wav
    keep = int(keep_seconds * sample_rate)
    start = max(0, int(loud[0]) * frame - keep)
    end = min(wav.numel(), (int(loud[-1]) + 1) * frame + keep)
    return wav[start:end]


def clipped_fraction(wav: torch.Tensor, threshold: float = 0.999) -> float:
    """Share of samples at or beyond ``threshold`` of full scale (a clipped recording has runs of them)."""
    if wav.numel() == 0:
        return 0.0
    return float((wav.abs() >= threshold).float().mean())


def normalize_loudness(wav: torch.Tensor, target_rms_db: float = -20.0, peak_limit: float = 0.95) -> torch.Tensor:
    """Scale to ``target_rms_db`` RMS, then back off so the peak never exceeds ``peak_limit``.

    RMS rather than peak normalisation gives speakers a similar level; the peak limit avoids creating
    clipping that the model would learn.
    """
    rms = wav.pow(2).mean().sqrt()
    if float(rms) < _EPS:
        return wav
    gain = 10.0 ** (target_rms_db / 20.0) / rms
    peak = wav.abs().max() * gain
    if float(peak) > peak_limit:
        gain = gain * peak_limit / peak
    return wav * gain


@dataclass(frozen=True)
class SliceConfig:
    """Where a long recording may be cut: pauses of at least ``min_silence_seconds`` below ``threshold_db``."""

    min_seconds: float = 2.0
    max_seconds: float = 12.0
    min_silence_seconds: float = 0.3
    threshold_db: float = -40.0
    frame_seconds: float = 0.02


def slice_on_silence(wav: torch.Tensor, sample_rate: int, config: SliceConfig | None = None) -> list[tuple[int, int]]:
    """Split a long clip into ``(start, end)`` sample ranges at silent pauses.

    Cuts go in the middle of pauses; pieces shorter than ``min_seconds`` are merged with the next one,
    and a piece still longer than ``max_seconds`` (no pause to cut at) is cut at its quietest frame.
    """
    config = config or SliceConfig()
    frame = max(1, int(config.frame_seconds * sample_rate))
    levels = frame_rms_db(wav, frame, frame)
    quiet = (levels < peak_db(wav) + config.threshold_db).tolist()
    min_run = max(1, int(config.min_silence_seconds / config.frame_seconds))
    cut_points, run_start = [], None
    for index, is_quiet in enumerate([*quiet, False]):
        if is_quiet and run_start is None:
            run_start = index
        elif not is_quiet and run_start is not None:
            if index - run_start >= min_run and run_start > 0 and index < len(quiet):
                cut_points.append(((run_start + index) // 2) * frame)
            run_start = None
    bounds = [0, *cut_points, wav.numel()]
    pieces: list[tuple[int, int]] = []
    start = 0
    for end in bounds[1:]:
        if (end - start) / sample_rate >= config.min_seconds or end == wav.numel():
            pieces.append((start, end))
            start = end
    if len(pieces) > 1 and (pieces[-1][1] - pieces[-1][0]) / sample_rate < config.min_seconds:
        last = pieces.pop()
        pieces[-1] = (pieces[-1][0], last[1])
    return [piece for begin, end in pieces for piece in _cut_overlong(levels, frame, begin, end, sample_rate, config)]


def _cut_overlong(
    levels: torch.Tensor, frame: int, start: int, end: int, sample_rate: int, config: SliceConfig
) -> list[tuple[int, int]]:
    max_samples = int(config.max_seconds * sample_rate)
    if end - start <= max_samples:
        return [(start, end)]
    low = (start + int(config.min_seconds * sample_rate)) // frame
    high = min((start + max_samples) // frame, levels.numel())
    if high <= low:
        cut = start + max_samples
    else:
        cut = (low + int(torch.argmin(levels[low:high]))) * frame
    return [(start, cut), *_cut_overlong(levels, frame, cut, end, sample_rate, config)]

"""Choose the reference clip a voice bundle is synthesized with.

GPT-SoVITS copies timbre *and* prosody from its reference: a clip with an unusual pitch,
background noise or clipping gets copied into every sentence. So the pick is the clip that
is most typical of the speaker: 3–10 s long, not clipped, highest SNR, and median F0 closest
to the speaker's median F0 over all clips.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from gpt_sovits_train.audio.io import resample
from gpt_sovits_train.audio.processing import clipped_fraction, estimate_snr_db, frame_rms_db

log = logging.getLogger(__name__)

PITCH_RATE = 16000


@dataclass(frozen=True)
class ClipStats:
    """What the selection looks at for one candidate clip."""

    key: str
    duration: float
    median_f0: float  # Hz over voiced frames; 0 when nothing is voiced
    voiced_fraction: float
    snr_db: float
    clipped_fraction: float
    has_text: bool

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_f0(
    wav: np.ndarray, sample_rate: int, fmin: float = 60.0, fmax: float = 500.0, voicing_threshold: float = 0.6
) -> np.ndarray:
    """Per-frame F0 in Hz (0 = unvoiced) from the normalized autocorrelation of 40 ms frames, 10 ms hop.

    A frame is voiced when its best lag's normalized autocorrelation passes
    ``voicing_threshold`` and it is within 30 dB of the clip's loud level. Plenty for ranking
    clips by typical pitch; not meant as a precise pitch tracker.
    """
    audio = resample(np.asarray(wav, dtype=np.float32), sample_rate, PITCH_RATE).numpy().astype(np.float64)
    frame, hop = int(0.04 * PITCH_RATE), int(0.01 * PITCH_RATE)
    if audio.size < frame:
        return np.zeros(0)
    n_frames = 1 + (audio.size - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop][:n_frames]
    frames = frames - frames.mean(axis=1, keepdims=True)
    n_fft = 1 << (2 * frame - 1).bit_length()
    spec = np.fft.rfft(frames, n_fft, axis=1)
    acf = np.fft.irfft(spec * np.conj(spec), n_fft, axis=1)[:, :frame]
    # Divide by the overlap length so long lags are not penalized, then by lag 0 to normalize.
    acf = acf / (frame - np.arange(frame))
    acf = acf / np.maximum(acf[:, :1], 1e-12)
    lag_lo, lag_hi = int(PITCH_RATE / fmax), min(frame - 1, int(PITCH_RATE / fmin))
    window = acf[:, lag_lo : lag_hi + 1]
    # Take the *first* local maximum close to the global one: multiples of the period peak
    # almost as high, and picking the largest would report octave-low pitches.
    is_peak = np.zeros_like(window, dtype=bool)
    is_peak[:, 1:-1] = (window[:, 1:-1] > window[:, :-2]) & (window[:, 1:-1] >= window[:, 2:])
    near_best = window >= 0.9 * window.max(axis=1, keepdims=True)
    candidates = is_peak & near_best
    best = np.where(candidates.any(axis=1), np.argmax(candidates, axis=1), np.argmax(window, axis=1))
    peak = window[np.arange(n_frames), best]
    level = frame_rms_db(audio, frame, hop)[:n_frames]
    loud_enough = level > (np.percentile(level, 95) - 30.0)
    f0 = PITCH_RATE / (best + lag_lo)
    return np.where((peak >= voicing_threshold) & loud_enough, f0, 0.0)


def analyze_clip(key: str, wav: np.ndarray, sample_rate: int, text: str = "") -> ClipStats:
    """Measure one candidate clip."""
    f0 = estimate_f0(wav, sample_rate)
    voiced = f0[f0 > 0]
    return ClipStats(
        key=key,
        duration=len(wav) / sample_rate,
        median_f0=float(np.median(voiced)) if voiced.size else 0.0,
        voiced_fraction=float(voiced.size / f0.size) if f0.size else 0.0,
        snr_db=estimate_snr_db(wav, sample_rate),
        clipped_fraction=clipped_fraction(wav),
        has_text=bool(text.strip()),
    )


@dataclass(frozen=True)
class ReferencePolicy:
    """Rules and weights of the choice; the defaults follow GPT-SoVITS's 3–10 s reference window."""

    min_seconds: float = 3.0
    max_seconds: float = 10.0
    max_clipped_fraction: float = 1e-4
    min_voiced_fraction: float = 0.2
    pitch_weight: float = 1.0  # cost per octave away from the speaker median
    snr_weight: float = 1.0  # cost per 30 dB below the best clip's SNR
    duration_weight: float = 0.1  # cost per 10 s away from the preferred length
    preferred_seconds: float = 6.0


def select_reference(clips: Sequence[ClipStats], policy: ReferencePolicy | None = None) -> tuple[ClipStats, list[dict]]:
    """Return the chosen clip and every candidate's cost (best first) for the report.

    Clips outside the length window, clipped, mostly unvoiced or without text are ineligible.
    If none is eligible the least-bad clip is returned with a warning, so a cloning run on
    very little audio still finishes; the report says so.
    """
    if not clips:
        raise ValueError("no clips to choose a reference from: the slicing step kept no segment")
    policy = policy or ReferencePolicy()
    voiced_f0 = np.array([c.median_f0 for c in clips if c.median_f0 > 0])
    speaker_f0 = float(np.median(voiced_f0)) if voiced_f0.size else 0.0
    best_snr = max(c.snr_db for c in clips)

    table = []
    for clip in clips:
        reasons = []
        if not policy.min_seconds <= clip.duration <= policy.max_seconds:
            reasons.append("duration")
        if clip.clipped_fraction > policy.max_clipped_fraction:
            reasons.append("clipped")
        if clip.voiced_fraction < policy.min_voiced_fraction:
            reasons.append("unvoiced")
        if not clip.has_text:
            reasons.append("no_text")
        pitch_octaves = abs(np.log2(clip.median_f0 / speaker_f0)) if clip.median_f0 > 0 and speaker_f0 > 0 else 1.0
        cost = (
            policy.pitch_weight * pitch_octaves
            + policy.snr_weight * (best_snr - clip.snr_db) / 30.0
            + policy.duration_weight * abs(clip.duration - policy.preferred_seconds) / 10.0
        )
        table.append({"key": clip.key, "cost": float(cost), "ineligible": reasons, "speaker_median_f0": speaker_f0})
    table.sort(key=lambda row: (bool(row["ineligible"]), len(row["ineligible"]), row["cost"]))
    chosen = next(c for c in clips if c.key == table[0]["key"])
    if table[0]["ineligible"]:
        log.warning(
            "no clip meets the reference rules (%s); using %s anyway (fails: %s). Record a clean 3-10 s "
            "sentence and re-run the reference step for better results.",
            policy,
            chosen.key,
            ", ".join(table[0]["ineligible"]),
        )
    return chosen, table

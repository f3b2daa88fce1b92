"""Cut a long raw recording into 2–12 s training segments at pauses.

Few-shot training needs short utterances: the GPT stage learns from whole clips and the
SoVITS stage samples windows from them, and clips over ~12 s waste memory while clips under
~2 s carry too little prosody. A voice-activity detector finds speech *regions*; ``pack_regions``
then merges neighbouring short regions and splits long ones at their quietest point so every
segment lands inside ``[min_seconds, max_seconds]``. Two detectors are offered:

* ``EnergyVAD`` (default): frame RMS relative to the recording's loud level. Needs no weights
  and is robust enough for a single speaker in a quiet room.
* ``SileroVAD``: the ``silero-vad`` package, whose wheel ships its model. Better on noisy input.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np

from gpt_sovits_train.audio.io import resample
from gpt_sovits_train.audio.processing import frame_rms_db


@dataclass(frozen=True)
class Span:
    """A half-open sample interval ``[start, end)`` inside one recording."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def seconds(self, sample_rate: int) -> float:
        return self.length / sample_rate


class VoiceActivityDetector(Protocol):
    """Anything that returns the speech regions of a mono float waveform."""

    def __call__(self, wav: np.ndarray, sample_rate: int) -> list[Span]: ...


class EnergyVAD:
    """Speech where the frame RMS is within ``threshold_db`` of the recording's loud level.

    The reference level is a high percentile of frame loudness rather than the peak, so one
    click or cough does not push every word under the threshold.
    """

    def __init__(
        self,
        threshold_db: float = -35.0,
        frame_ms: float = 25.0,
        hop_ms: float = 10.0,
        min_silence_ms: float = 300.0,
        min_speech_ms: float = 150.0,
        reference_percentile: float = 95.0,
        absolute_floor_db: float = -60.0,
    ) -> None:
        if threshold_db >= 0:
            raise ValueError(f"threshold_db must be negative (dB below the loud level), got {threshold_db}")
        self.threshold_db = threshold_db
        self.frame_ms = frame_ms
        self.hop_ms = hop_ms
        self.min_silence_ms = min_silence_ms
        self.min_speech_ms = min_speech_ms
        self.reference_percentile = reference_percentile
        self.absolute_floor_db = absolute_floor_db

    def __call__(self, wav: np.ndarray, sample_rate: int) -> list[Span]:
        frame = max(1, round(sample_rate * self.frame_ms / 1000))
        hop = max(1, round(sample_rate * self.hop_ms / 1000))
        db = frame_rms_db(wav, frame, hop)
        if db.size == 0:
            return []
        loud = float(np.percentile(db, self.reference_percentile))
        threshold = max(loud + self.threshold_db, self.absolute_floor_db)
        voiced = db > threshold
        regions = _runs(voiced)
        # Frame i covers samples [i*hop, i*hop+frame); report the centre hop of each frame.
        offset = (frame - hop) // 2
        spans = [Span(max(0, s * hop + offset), min(len(wav), e * hop + offset)) for s, e in regions]
        return _tidy(spans, sample_rate, self.min_silence_ms, self.min_speech_ms)


class SileroVAD:
    """Neural voice-activity detection with the model inside the ``silero-vad`` wheel."""

    MODEL_RATE = 16000

    def __init__(
        self,
        threshold: float = 0.5,
        min_silence_ms: float = 300.0,
        min_speech_ms: float = 250.0,
        speech_pad_ms: float = 30.0,
        onnx: bool = False,
    ) -> None:
        try:
            from silero_vad import load_silero_vad
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                "SileroVAD needs the optional 'silero-vad' package: pip install silero-vad "
                "(or use gpt_sovits_train.clone.segment.EnergyVAD, which needs nothing)"
            ) from err
        self.model = load_silero_vad(onnx=onnx)
        self.threshold = threshold
        self.min_silence_ms = min_silence_ms
        self.min_speech_ms = min_speech_ms
        self.speech_pad_ms = speech_pad_ms

    def __call__(self, wav: np.ndarray, sample_rate: int) -> list[Span]:
        import torch
        from silero_vad import get_speech_timestamps

        audio16 = resample(wav, sample_rate, self.MODEL_RATE).numpy()
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio16, dtype=np.float32)),
            self.model,
            threshold=self.threshold,
            sampling_rate=self.MODEL_RATE,
            min_speech_duration_ms=int(self.min_speech_ms),
            min_silence_duration_ms=int(self.min_silence_ms),
            speech_pad_ms=int(self.speech_pad_ms),
        )
        scale = sample_rate / self.MODEL_RATE
        return [Span(int(s["start"] * scale), min(len(wav), int(s["end"] * scale))) for s in stamps]


def pack_regions(
    regions: list[Span],
    wav: np.ndarray,
    sample_rate: int,
    min_seconds: float = 2.0,
    max_seconds: float = 12.0,
    max_merge_gap_seconds: float = 0.8,
    pad_seconds: float = 0.1,
) -> tuple[list[Span], list[Span]]:
    """Merge short neighbouring regions and split long ones; return ``(kept, too_short)``.

    A region is merged into the running segment only while that segment is still shorter
    than ``min_seconds``, the pause between them is at most ``max_merge_gap_seconds`` (long
    pauses inside a training clip teach the model to stall) and the result stays under
    ``max_seconds``. Segments longer than ``max_seconds`` are cut into equal parts, each cut
    moved to the quietest frame near it. ``pad_seconds`` of context is kept on both sides
    so word onsets and tails are not clipped.
    """
    if min_seconds <= 0 or max_seconds <= min_seconds:
        raise ValueError(f"need 0 < min_seconds < max_seconds, got {min_seconds} and {max_seconds}")
    pad = round(pad_seconds * sample_rate)
    max_len = round(max_seconds * sample_rate)
    min_len = round(min_seconds * sample_rate)
    max_gap = round(max_merge_gap_seconds * sample_rate)

    merged: list[Span] = []
    for region in sorted(regions, key=lambda s: s.start):
        if merged:
            last = merged[-1]
            gap = region.start - last.end
            combined = region.end - last.start + 2 * pad
            if last.length + 2 * pad < min_len and gap <= max_gap and combined <= max_len:
                merged[-1] = Span(last.start, region.end)
                continue
        merged.append(region)

    kept: list[Span] = []
    too_short: list[Span] = []
    for span in merged:
        padded = Span(max(0, span.start - pad), min(len(wav), span.end + pad))
        pieces = _split_long(padded, wav, sample_rate, max_len) if padded.length > max_len else [padded]
        for piece in pieces:
            (kept if piece.length >= min_len else too_short).append(piece)
    return kept, too_short


def _split_long(span: Span, wav: np.ndarray, sample_rate: int, max_len: int) -> list[Span]:
    """Cut ``span`` into ``ceil(len / max_len)`` parts at the quietest 10 ms frame near each even cut."""
    n_parts = -(-span.length // max_len)
    hop = max(1, sample_rate // 100)
    search = span.length // (2 * n_parts)
    cuts = [span.start]
    for k in range(1, n_parts):
        target = span.start + k * span.length // n_parts
        # Stay where this piece and the remaining ones can still fit under max_len.
        feasible_lo = max(cuts[-1] + hop, span.end - (n_parts - k) * max_len)
        feasible_hi = min(cuts[-1] + max_len, span.end - hop)
        lo, hi = max(feasible_lo, target - search), min(feasible_hi, target + search)
        window = wav[lo:hi]
        if window.size >= hop:
            db = frame_rms_db(window, hop, hop)
            target = lo + int(np.argmin(db)) * hop + hop // 2
        cuts.append(target)
    cuts.append(span.end)
    pieces = [Span(a, b) for a, b in pairwise(cuts)]
    # A quiet point can sit past the even cut; re-split any piece that still overflows.
    out: list[Span] = []
    for piece in pieces:
        out.extend(_split_long(piece, wav, sample_rate, max_len) if piece.length > max_len else [piece])
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index pairs of the True runs in a boolean vector."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _tidy(spans: list[Span], sample_rate: int, min_silence_ms: float, min_speech_ms: float) -> list[Span]:
    """Close pauses shorter than ``min_silence_ms`` and drop blips shorter than ``min_speech_ms``."""
    min_gap = sample_rate * min_silence_ms / 1000
    min_len = sample_rate * min_speech_ms / 1000
    joined: list[Span] = []
    for span in spans:
        if joined and span.start - joined[-1].end < min_gap:
            joined[-1] = Span(joined[-1].start, span.end)
        else:
            joined.append(span)
    return [s for s in joined if s.length >= min_len]

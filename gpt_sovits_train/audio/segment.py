"""Cut long recordings into clips at pauses: the one slicer of the project.

Training needs short utterances: the GPT stage learns from whole clips and the SoVITS stage samples windows from
them; clips over ~12 s waste memory and clips under ~2 s carry too little prosody. A voice-activity detector
finds speech *regions*; :func:`pack_regions` then merges neighbouring short regions and splits long ones at their
quietest point so every clip lands inside ``[min_seconds, max_seconds]``. Two detectors are offered:

* :class:`EnergyVAD` (default): frame RMS relative to the recording's loud level. Needs no weights and is robust
  enough for a single speaker in a quiet room.
* :class:`SileroVAD`: the ``silero-vad`` package, whose wheel ships its model. Better on noisy input.

The cloning workflow (``clone/curate.py``) slices recordings it holds in memory. ``gst-prepare`` slices
recordings of any length without decoding them whole: :func:`plan_file_slices` streams the file through
:func:`stream_levels` in fixed-size blocks (only the frame levels, ~100 numbers a second, are kept), runs the same
:class:`EnergyVAD` decision and :func:`pack_regions` on those levels, and :func:`read_span` then decodes one clip
at a time. Memory is bounded by one block plus one clip, whatever the recording's length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from gpt_sovits_train.audio.io import resample, to_mono
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


@dataclass(frozen=True)
class FrameLevels:
    """RMS level (dBFS) of each frame of a recording: ``db[i]`` covers samples ``[i*hop, i*hop+frame)``.

    This is all the slicer needs to decide where to cut, so a recording can be measured block by block
    (:func:`stream_levels`) and sliced without ever being held in memory.
    """

    db: np.ndarray
    frame: int
    hop: int
    num_samples: int

    @classmethod
    def of(cls, wav: np.ndarray, frame: int, hop: int) -> FrameLevels:
        return cls(np.asarray(frame_rms_db(np.asarray(wav), frame, hop), dtype=np.float64), frame, hop, len(wav))

    def quietest(self, lo: int, hi: int) -> int | None:
        """The centre sample of the quietest frame lying inside ``[lo, hi)``; ``None`` when no frame fits."""
        first = -(-lo // self.hop)
        last = min((hi - self.frame) // self.hop, self.db.size - 1)
        if last < first:
            return None
        return (first + int(np.argmin(self.db[first : last + 1]))) * self.hop + self.frame // 2


class VoiceActivityDetector(Protocol):
    """Anything that returns the speech regions of a mono float waveform."""

    def __call__(self, wav: np.ndarray, sample_rate: int) -> list[Span]: ...


class EnergyVAD:
    """Speech where the frame RMS is within ``threshold_db`` of the recording's loud level.

    The reference level is a high percentile of frame loudness rather than the peak, so one
    click or cough does not push every word under the threshold. The decision reads only frame
    levels (:meth:`regions`), so an in-memory signal and a file streamed in blocks are sliced alike.
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

    def frame_and_hop(self, sample_rate: int) -> tuple[int, int]:
        """Frame and hop lengths in samples at ``sample_rate``."""
        return max(1, round(sample_rate * self.frame_ms / 1000)), max(1, round(sample_rate * self.hop_ms / 1000))

    def __call__(self, wav: np.ndarray, sample_rate: int) -> list[Span]:
        return self.regions(FrameLevels.of(wav, *self.frame_and_hop(sample_rate)), sample_rate)

    def regions(self, levels: FrameLevels, sample_rate: int) -> list[Span]:
        """Speech regions from frame levels measured with :meth:`frame_and_hop`."""
        db, frame, hop = levels.db, levels.frame, levels.hop
        if db.size == 0:
            return []
        loud = float(np.percentile(db, self.reference_percentile))
        threshold = max(loud + self.threshold_db, self.absolute_floor_db)
        voiced = db > threshold
        # Frame i covers samples [i*hop, i*hop+frame); report the centre hop of each frame.
        offset = (frame - hop) // 2
        spans = [Span(max(0, s * hop + offset), min(levels.num_samples, e * hop + offset)) for s, e in _runs(voiced)]
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
                "(or use gpt_sovits_train.audio.segment.EnergyVAD, which needs nothing)"
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
    wav: np.ndarray | FrameLevels,
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
    so word onsets and tails are not clipped. ``wav`` is the signal, or the frame levels of a
    recording that is not in memory (only levels are needed to place the cuts).
    """
    if min_seconds <= 0 or max_seconds <= min_seconds:
        raise ValueError(f"need 0 < min_seconds < max_seconds, got {min_seconds} and {max_seconds}")
    total = wav.num_samples if isinstance(wav, FrameLevels) else len(wav)
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

    levels: FrameLevels | None = wav if isinstance(wav, FrameLevels) else None
    kept: list[Span] = []
    too_short: list[Span] = []
    for span in merged:
        padded = Span(max(0, span.start - pad), min(total, span.end + pad))
        if padded.length > max_len:
            if levels is None:  # measured once, only for a recording that has an over-long region
                hop = max(1, sample_rate // 100)
                levels = FrameLevels.of(np.asarray(wav), hop, hop)
            pieces = _split_long(padded, levels, max_len)
        else:
            pieces = [padded]
        for piece in pieces:
            (kept if piece.length >= min_len else too_short).append(piece)
    return kept, too_short


def _split_long(span: Span, levels: FrameLevels, max_len: int) -> list[Span]:
    """Cut ``span`` into ``ceil(len / max_len)`` parts at the quietest frame near each even cut."""
    n_parts = -(-span.length // max_len)
    step = levels.hop
    search = span.length // (2 * n_parts)
    cuts = [span.start]
    for k in range(1, n_parts):
        target = span.start + k * span.length // n_parts
        # Stay where this piece and the remaining ones can still fit under max_len.
        feasible_lo = max(cuts[-1] + step, span.end - (n_parts - k) * max_len)
        feasible_hi = min(cuts[-1] + max_len, span.end - step)
        lo, hi = max(feasible_lo, target - search), min(feasible_hi, target + search)
        quiet = levels.quietest(lo, hi) if hi > lo else None
        cuts.append(target if quiet is None else quiet)
    cuts.append(span.end)
    pieces = [Span(a, b) for a, b in pairwise(cuts)]
    # A quiet point can sit past the even cut; re-split any piece that still overflows.
    out: list[Span] = []
    for piece in pieces:
        out.extend(_split_long(piece, levels, max_len) if piece.length > max_len else [piece])
    return out


# ---------------------------------------------------------------- recordings too long to decode whole


@dataclass(frozen=True)
class StreamStats:
    """What streaming a file cost: blocks decoded and the largest one (in samples per channel)."""

    blocks: int
    largest_block: int


def stream_levels(path: str | Path, frame: int, hop: int, block_samples: int) -> tuple[FrameLevels, int, StreamStats]:
    """Frame levels of a file's mono mix, decoded ``block_samples`` at a time: ``(levels, sample_rate, stats)``.

    Gives the same frames as :meth:`FrameLevels.of` on the whole decoded signal: the samples after a block's
    last whole frame are carried into the next block.
    """
    parts: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.float32)
    total = blocks = largest = 0
    with sf.SoundFile(str(path)) as handle:
        rate = int(handle.samplerate)
        for block in handle.blocks(blocksize=max(block_samples, frame), dtype="float32", always_2d=True):
            blocks, largest, total = blocks + 1, max(largest, len(block)), total + len(block)
            buffer = np.concatenate([carry, to_mono(np.ascontiguousarray(block.T))])
            if buffer.size < frame:
                carry = buffer
                continue
            count = 1 + (buffer.size - frame) // hop
            parts.append(np.asarray(frame_rms_db(buffer[: (count - 1) * hop + frame], frame, hop)))
            carry = buffer[count * hop :]
    if not parts and carry.size:  # shorter than one frame: one zero-padded frame, as frame_rms_db does
        parts.append(np.asarray(frame_rms_db(carry, frame, hop)))
    db = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
    return FrameLevels(db, frame, hop, total), rate, StreamStats(blocks, largest)


@dataclass(frozen=True)
class FileSlices:
    """Where a recording on disk is cut: kept clips and speech too short to keep, in the file's own samples."""

    sample_rate: int
    num_samples: int
    clips: list[Span]
    too_short: list[Span]
    stats: StreamStats


def plan_file_slices(
    path: str | Path,
    vad: EnergyVAD,
    block_seconds: float = 30.0,
    min_seconds: float = 2.0,
    max_seconds: float = 12.0,
    max_merge_gap_seconds: float = 0.8,
    pad_seconds: float = 0.1,
) -> FileSlices:
    """Slice a file of any length with :class:`EnergyVAD` and :func:`pack_regions`, streaming it in blocks.

    Nothing but frame levels is kept from the streaming pass; each clip is decoded later with :func:`read_span`.
    """
    rate = int(sf.info(str(path)).samplerate)
    frame, hop = vad.frame_and_hop(rate)
    levels, rate, stats = stream_levels(path, frame, hop, max(1, math.ceil(block_seconds * rate)))
    regions = vad.regions(levels, rate)
    clips, too_short = pack_regions(regions, levels, rate, min_seconds, max_seconds, max_merge_gap_seconds,
                                    pad_seconds)
    return FileSlices(rate, levels.num_samples, clips, too_short, stats)


def read_span(path: str | Path, span: Span) -> np.ndarray:
    """Decode only ``span`` of a file: float32 ``[channels, samples]``."""
    with sf.SoundFile(str(path)) as handle:
        handle.seek(span.start)
        return np.ascontiguousarray(handle.read(span.length, dtype="float32", always_2d=True).T)


def spans_between(total: int, covered: list[Span]) -> Iterator[Span]:
    """The gaps of ``[0, total)`` that no span in ``covered`` reaches (overlaps allowed)."""
    cursor = 0
    for span in sorted(covered, key=lambda s: s.start):
        if span.start > cursor:
            yield Span(cursor, span.start)
        cursor = max(cursor, span.end)
    if cursor < total:
        yield Span(cursor, total)


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

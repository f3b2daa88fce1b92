"""From raw recordings to clean, loudness-matched 2–12 s segment files, with a report of what was dropped.

Order matters: denoise the whole recording first (the noise profile needs the pauses that
slicing removes), detect speech, pack into segments, then judge and normalize each segment.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from gpt_sovits_train.audio.io import AudioDecodeError, decode_audio, resample, to_mono
from gpt_sovits_train.audio.processing import clipped_fraction, normalize_loudness, rms_dbfs
from gpt_sovits_train.audio.segment import EnergyVAD, Span, VoiceActivityDetector, pack_regions
from gpt_sovits_train.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

Denoiser = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class SegmentRules:
    """Length window and the thresholds a segment must pass to become training data."""

    min_seconds: float = 2.0
    max_seconds: float = 12.0
    max_merge_gap_seconds: float = 0.8
    pad_seconds: float = 0.1
    max_clipped_fraction: float = 1e-3  # 0.1 % of samples pinned at full scale = audible distortion
    min_level_dbfs: float = -50.0  # quieter than this is silence or a mis-detected breath
    target_lufs: float = -20.0
    sample_rate: int = SAMPLE_RATE  # what the SoVITS stage trains on


@dataclass
class SegmentRecord:
    key: str
    source: str
    start_s: float
    end_s: float
    path: str | None = None  # set only for kept segments
    dropped: str | None = None  # reason when not kept

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


@dataclass
class CurationReport:
    segments: list[SegmentRecord] = field(default_factory=list)
    input_seconds: float = 0.0

    @property
    def kept(self) -> list[SegmentRecord]:
        return [s for s in self.segments if s.dropped is None]

    def summary(self) -> dict:
        dropped = Counter()
        for seg in self.segments:
            if seg.dropped:
                dropped[seg.dropped] += seg.seconds
        kept_seconds = sum(s.seconds for s in self.kept)
        return {
            "input_minutes": round(self.input_seconds / 60, 3),
            "kept_segments": len(self.kept),
            "kept_minutes": round(kept_seconds / 60, 3),
            "dropped_minutes_by_reason": {k: round(v / 60, 3) for k, v in sorted(dropped.items())},
            "silence_minutes": round(max(0.0, self.input_seconds - kept_seconds - sum(dropped.values())) / 60, 3),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"summary": self.summary(), "segments": [asdict(s) for s in self.segments]},
                                   indent=2, ensure_ascii=False))


def load_recording(path: Path) -> tuple[np.ndarray, int]:
    """Decode any format libsndfile reads (wav, flac, ogg, mp3, ...) to mono float32 at its own rate."""
    try:
        decoded = decode_audio(path)
    except AudioDecodeError as err:
        raise ValueError(f"{err}. Convert it to WAV or FLAC first (e.g. ffmpeg -i in.m4a out.wav)") from err
    return to_mono(decoded.samples), decoded.sample_rate


def judge_segment(wav: np.ndarray, sample_rate: int, rules: SegmentRules) -> str | None:
    """Why a segment must be dropped, or None to keep it."""
    seconds = len(wav) / sample_rate
    if seconds < rules.min_seconds:
        return "too_short"
    if seconds > rules.max_seconds + 1e-6:
        return "too_long"
    if rms_dbfs(wav) < rules.min_level_dbfs:
        return "silent"
    if clipped_fraction(wav) > rules.max_clipped_fraction:
        return "clipped"
    return None


def curate_recordings(
    inputs: Sequence[Path],
    out_dir: Path,
    vad: VoiceActivityDetector | None = None,
    denoiser: Denoiser | None = None,
    rules: SegmentRules | None = None,
    voice_name: str = "voice",
) -> CurationReport:
    """Slice every recording into segment WAVs under ``out_dir`` and report kept/dropped time."""
    if not inputs:
        raise ValueError("no input recordings given: pass inputs=[path/to/recording.wav, ...]")
    missing = [str(p) for p in inputs if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"input recordings not found: {missing}")
    vad = vad or EnergyVAD()
    rules = rules or SegmentRules()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = CurationReport()
    index = 0
    for source in tqdm(list(inputs), desc="slice recordings", unit="file"):
        raw, rate = load_recording(Path(source))
        report.input_seconds += len(raw) / rate
        wav = resample(raw, rate, rules.sample_rate).numpy()
        if denoiser is not None:
            wav = denoiser(wav, rules.sample_rate)
        regions = vad(wav, rules.sample_rate)
        kept, too_short = pack_regions(
            regions, wav, rules.sample_rate, rules.min_seconds, rules.max_seconds, rules.max_merge_gap_seconds,
            rules.pad_seconds,
        )
        spans: list[tuple[Span, str | None]] = [(s, None) for s in kept] + [(s, "too_short") for s in too_short]
        for span, reason in sorted(spans, key=lambda item: item[0].start):
            key = f"{voice_name}_{index:04d}"
            index += 1
            piece = wav[span.start : span.end]
            reason = reason or judge_segment(piece, rules.sample_rate, rules)
            # Clipping is judged on the original samples: resampling and denoising smear the flat tops.
            scale = rate / rules.sample_rate
            original = raw[int(span.start * scale) : int(span.end * scale)]
            if reason is None and clipped_fraction(original) > rules.max_clipped_fraction:
                reason = "clipped"
            record = SegmentRecord(key, str(source), span.start / rules.sample_rate, span.end / rules.sample_rate)
            if reason is None:
                path = out_dir / f"{key}.wav"
                level = normalize_loudness(piece, rules.sample_rate, rules.target_lufs)
                sf.write(str(path), level, rules.sample_rate, subtype="PCM_16")
                record.path = str(path)
            else:
                record.dropped = reason
            report.segments.append(record)
    if not report.kept:
        log.error("no segment survived slicing: %s", report.summary())
    return report

"""Recordings without a transcript: streamed from disk, sliced at pauses, each clip transcribed and prepared.

The policy (``audio.slice_long_inputs``, issue 15 items 9 and 16):

* A recording that comes **with** a transcript is never sliced. One text for minutes of speech cannot be split
  across clips without an alignment (word timings), and a wrong split teaches the model wrong text, so a file
  longer than the clip policy (``audio.max_seconds``; over ``audio.max_file_seconds`` it is refused from its
  header, undecoded) stays a ``too_long`` skip whose detail says what to do instead.
* A recording **without** a transcript (a folder input with no ``.txt``/``.lab`` beside it, a ``.list`` line
  whose text is empty) is, with ``audio.slice_long_inputs=true`` and an ASR configured as ``input.asr``,
  streamed through the one slicer (:mod:`gpt_sovits_train.audio.segment`) in blocks of
  ``audio.slice.block_seconds``: memory holds one block, the frame levels (about 100 numbers per second) and one
  clip, never the recording. Each clip (at most ``audio.slice.max_seconds`` ≤ ``audio.max_seconds``, the
  clip-duration policy) is decoded alone, cleaned by the same rules as any input, transcribed by the ASR and
  turned into a sample like any other. Without the option such inputs are ``missing_transcript`` skips.

Nothing is dropped silently: every clip is a sample or a skip record (``<file>@<start>-<end>s``), speech too
short to keep is a ``slice_too_short`` skip, and :class:`SliceReport` accounts for every second of the recording
(kept clips + left-out spans + pauses = its length); the manifest sums the reports under ``sliced``.
All clips of one recording land in the same split (the split is chosen per input), so no recording is in both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from gpt_sovits_train.audio.io import to_mono
from gpt_sovits_train.audio.segment import EnergyVAD, Span, plan_file_slices, read_span, spans_between
from gpt_sovits_train.constants import SAMPLE_RATE
from gpt_sovits_train.data.sources import Skip, Utterance
from gpt_sovits_train.data.utterance import (
    AudioRules,
    Extractors,
    RejectedInput,
    check_format,
    clean_audio,
    features_sample,
)

#: ``asr(wav, sample_rate)`` returning an object with ``.text`` and ``.language`` (:mod:`audio.asr`).
Transcriber = Callable[[Any, int], Any]


def needs_slicing(utterance: Utterance, rules: AudioRules) -> bool:
    """Whether this input goes through the slicer + ASR instead of being prepared whole."""
    return rules.slice_long_inputs and not utterance.text.strip()


@dataclass
class SliceReport:
    """Where every second of one sliced recording went."""

    source: str
    seconds: float = 0.0
    clips: int = 0  # written as samples
    clip_seconds: float = 0.0
    left_out: list[dict[str, Any]] = field(default_factory=list)  # {"start", "end", "reason"} in seconds
    pause_seconds: float = 0.0  # between the clips and left-out spans: what the slicer found silent
    blocks_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("seconds", "clip_seconds", "pause_seconds"):
            out[name] = round(out[name], 3)
        return out


def slice_and_prepare(
    utterance: Utterance,
    key: str,
    rules: AudioRules,
    extractors: Extractors,
    asr: Transcriber,
    report: SliceReport,
) -> Iterator[dict[str, Any] | Skip]:
    """Samples and skips for the clips of one untranscribed recording; fills ``report`` as it goes."""
    path = utterance.audio_path
    try:
        rate, notes, plan = _plan(path, rules)
    except RejectedInput as rejected:
        yield Skip(path, rejected.reason, rejected.detail)
        return
    report.seconds = plan.num_samples / rate
    report.blocks_read = plan.stats.blocks
    for span in plan.too_short:
        detail = (f"{span.seconds(rate):.2f} s of speech between long pauses, under "
                  f"audio.slice.min_seconds={rules.slice.min_seconds:g}")
        yield _left_out(report, path, span, rate, "slice_too_short", detail)
    for span in plan.clips:
        try:
            sample = _clip_sample(utterance, key, span, rate, notes, rules, extractors, asr)
        except RejectedInput as rejected:
            yield _left_out(report, path, span, rate, rejected.reason, rejected.detail)
            continue
        except Exception as error:  # one bad clip must not stop the recording; the report keeps the message
            yield _left_out(report, path, span, rate, "processing_error", f"{type(error).__name__}: {error}")
            continue
        report.clips += 1
        report.clip_seconds += span.seconds(rate)
        yield sample
    pauses = spans_between(plan.num_samples, [*plan.clips, *plan.too_short])
    report.pause_seconds = sum(gap.length for gap in pauses) / rate


def _plan(path: str, rules: AudioRules) -> tuple[int, list[str], Any]:
    if not Path(path).is_file():
        raise RejectedInput("missing_audio", f"{path} does not exist")
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as error:
        raise RejectedInput("corrupt_audio", f"cannot decode audio {path}: {error}") from error
    if info.frames == 0:
        raise RejectedInput("empty_audio", "the file has no samples")
    notes = check_format(info.channels, info.samplerate, rules)
    settings = rules.slice
    vad = EnergyVAD(threshold_db=settings.threshold_db, min_silence_ms=settings.min_silence_ms)
    try:
        plan = plan_file_slices(path, vad, settings.block_seconds, settings.min_seconds, settings.max_seconds,
                                settings.max_merge_gap_seconds, settings.pad_seconds)
    except (RuntimeError, sf.LibsndfileError, ValueError) as error:
        raise RejectedInput("corrupt_audio", f"cannot decode audio {path}: {error}") from error
    return plan.sample_rate, notes, plan


def _clip_sample(
    utterance: Utterance,
    key: str,
    span: Span,
    rate: int,
    notes: list[str],
    rules: AudioRules,
    extractors: Extractors,
    asr: Transcriber,
) -> dict[str, Any]:
    wav, clip_notes = clean_audio(to_mono(read_span(utterance.audio_path, span)), rate, rules, [*notes, "asr_text"])
    transcript = asr(wav.numpy(), SAMPLE_RATE)
    text = str(getattr(transcript, "text", "")).strip()
    if not text:
        raise RejectedInput("missing_transcript", "the ASR (input.asr) heard no words in this clip")
    language = utterance.language if utterance.language != "auto" else getattr(transcript, "language", "auto")
    clip = dataclasses.replace(utterance, text=text, language=language)
    start, end = round(span.start / rate, 3), round(span.end / rate, 3)
    clip_key = f"{key}__t{round(start * 1000):08d}"
    return features_sample(clip, clip_key, wav, clip_notes, extractors, rules, {"span": [start, end]})


def _left_out(report: SliceReport, path: str, span: Span, rate: int, reason: str, detail: str) -> Skip:
    start, end = round(span.start / rate, 3), round(span.end / rate, 3)
    report.left_out.append({"start": start, "end": end, "reason": reason})
    return Skip(f"{path}@{start:.2f}-{end:.2f}s", reason, detail)


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``sliced`` section: totals over every sliced recording."""
    left_out: dict[str, float] = {}
    for report in reports:
        for span in report["left_out"]:
            left_out[span["reason"]] = left_out.get(span["reason"], 0.0) + span["end"] - span["start"]
    return {
        "inputs": len(reports),
        "seconds": round(sum(r["seconds"] for r in reports), 3),
        "clips": sum(r["clips"] for r in reports),
        "clip_seconds": round(sum(r["clip_seconds"] for r in reports), 3),
        "left_out_spans": sum(len(r["left_out"]) for r in reports),
        "left_out_seconds": {reason: round(seconds, 3) for reason, seconds in sorted(left_out.items())},
        "pause_seconds": round(sum(r["pause_seconds"] for r in reports), 3),
        "blocks_read": sum(r["blocks_read"] for r in reports),
        "recordings": reports,
    }

"""Turn one :class:`Utterance` into one schema sample, or a :class:`Skip` saying why it cannot be used.

Every check that can reject an input lives here, in the order v2's prep scripts meet them (decode, audio
quality, text, features), so the reasons in the skip report are stable and specific.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from gpt_sovits_train.audio.io import AudioDecodeError, decode_audio, resample, to_mono
from gpt_sovits_train.audio.processing import clipped_fraction, is_silent, normalize_loudness, trim_silence
from gpt_sovits_train.constants import (
    BERT_DIM,
    MAX_CLIP_SECONDS,
    MAX_PHONES_PER_SECOND,
    SAMPLE_RATE,
    SSL_SAMPLE_RATE,
)
from gpt_sovits_train.data.schema import safe_key
from gpt_sovits_train.data.sources import Skip, Utterance


@dataclass
class SliceRules:
    """How recordings without a transcript are cut into clips (``audio.slice``; :mod:`audio.segment`)."""

    min_seconds: float = 2.0  # speech shorter than this (after merging neighbours) is reported, not kept
    max_seconds: float = 12.0  # longest clip; at most audio.max_seconds (the clip-duration policy)
    max_merge_gap_seconds: float = 0.8
    pad_seconds: float = 0.1
    threshold_db: float = -35.0  # EnergyVAD: speech = frames within this of the recording's loud level
    min_silence_ms: float = 300.0
    block_seconds: float = 30.0  # audio decoded at once while measuring a recording


@dataclass
class AudioRules:
    """What audio is accepted and how it is cleaned (``conf/prepare.yaml`` → ``audio``)."""

    min_seconds: float = 0.6
    max_seconds: float = MAX_CLIP_SECONDS  # the duration policy training derives its length caps from
    max_file_seconds: float = 60.0
    max_phones_per_second: float = MAX_PHONES_PER_SECOND
    silence_threshold_db: float = -50.0
    max_clipped_fraction: float = 0.001
    clip_level: float = 0.999
    allow_resample: bool = True
    allow_stereo: bool = True
    expected_sample_rate: int | None = None
    trim: bool = True
    trim_threshold_db: float = -40.0
    trim_keep_seconds: float = 0.05
    loudness: bool = True
    target_lufs: float = -20.0
    peak_limit: float = 0.95
    slice_long_inputs: bool = False  # inputs without a transcript: slice at pauses, transcribe each clip (ASR)
    slice: SliceRules = field(default_factory=SliceRules)

    def __post_init__(self) -> None:
        if isinstance(self.slice, dict):  # from the config
            self.slice = SliceRules(**self.slice)


@dataclass
class Extractors:
    """The feature callables; ``None`` means "do not compute this field"."""

    ssl: Any
    bert: Any = None
    speaker: Any = None
    codec: Any = None
    semantic: Any = None
    store_float16: bool = True
    versions: dict[str, str] = field(default_factory=dict)


#: What to do with a recording that has no transcript (skip reports repeat it).
UNTRANSCRIBED_HINT = ("to transcribe recordings without text, set audio.slice_long_inputs=true and an ASR "
                      "(clone/asr@input.asr=pocketsphinx or =whisper): they are sliced at pauses and each clip "
                      "is transcribed")


#: Why a long recording with a transcript is not sliced, and what to do instead.
LONG_WITH_TEXT_HINT = (
    "Its one transcript cannot be split across clips without an alignment, so it is not sliced: cut the "
    "recording into clips with a transcript each, or remove its transcript and set audio.slice_long_inputs=true "
    "with an ASR (clone/asr@input.asr=pocketsphinx or =whisper) to slice it at pauses and transcribe each clip"
)


class RejectedInput(Exception):
    """Internal signal: this input is skipped for ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def check_header_duration(path: str, rules: AudioRules) -> None:
    """Reject a file that is far too long from its header alone, before a byte of it is decoded.

    Decoding a 2-hour recording costs gigabytes and a minute only to be told it is too long. Files up to
    ``max_file_seconds`` are still decoded, because trimming leading/trailing silence may bring them under
    ``max_seconds``. A header that cannot be read is left to the decoder, which names the problem.
    """
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError):
        return
    seconds = info.frames / info.samplerate if info.samplerate > 0 else 0.0
    limit = max(rules.max_file_seconds, rules.max_seconds)
    if seconds > limit:
        raise RejectedInput(
            "too_long",
            f"{seconds:.1f} s from the file header, over audio.max_file_seconds={limit:g}. {LONG_WITH_TEXT_HINT}",
        )


def check_text_rate(units: int, seconds: float, rules: AudioRules, what: str = "phones") -> None:
    """Reject a transcript far too long for its audio (a pasted page on a 3 s clip): more than
    ``max_phones_per_second`` phones per second of speech. Called first with characters, counted as a quarter
    phone each (every v2 language produces more), so that a megabyte line never reaches the phonemizer."""
    per_unit = 0.25 if what == "characters" else 1.0
    if seconds > 0 and units * per_unit / seconds > rules.max_phones_per_second:
        raise RejectedInput(
            "implausible_text_length",
            f"{units} {what} for {seconds:.2f} s of audio ({units / seconds:.0f}/s); "
            f"audio.max_phones_per_second={rules.max_phones_per_second:g}",
        )


def load_clean_audio(path: str, rules: AudioRules) -> tuple[torch.Tensor, list[str]]:
    """Decode and clean one file to mono 32 kHz; returns (wav, notes about fixes applied)."""
    if not Path(path).is_file():
        raise RejectedInput("missing_audio", f"{path} does not exist")
    check_header_duration(path, rules)
    try:
        decoded = decode_audio(path)
    except AudioDecodeError as error:
        raise RejectedInput("corrupt_audio", str(error)) from error
    if decoded.samples.size == 0:
        raise RejectedInput("empty_audio", "the file has no samples")
    notes = check_format(decoded.num_channels, decoded.sample_rate, rules)
    return clean_audio(to_mono(decoded.samples), decoded.sample_rate, rules, notes)


def check_format(channels: int, sample_rate: int, rules: AudioRules) -> list[str]:
    """Refuse a channel layout or rate the rules do not allow; returns notes on the fixes that will be applied."""
    notes = []
    if channels > 1:
        if not rules.allow_stereo:
            raise RejectedInput("not_mono", f"{channels} channels and audio.allow_stereo is false")
        notes.append("downmixed")
    expected = rules.expected_sample_rate
    if expected is not None and sample_rate != expected and not rules.allow_resample:
        raise RejectedInput("wrong_sample_rate", f"{sample_rate} Hz, expected {expected} Hz")
    if sample_rate != SAMPLE_RATE:
        notes.append("resampled")
    return notes


def clean_audio(
    mono: np.ndarray, sample_rate: int, rules: AudioRules, notes: list[str]
) -> tuple[torch.Tensor, list[str]]:
    """Check and clean a decoded mono signal (a whole file, or one clip sliced from a long recording): clipping,
    resampling to 32 kHz, silence, trimming, duration, loudness."""
    mono = torch.from_numpy(np.array(mono, dtype=np.float32))
    clipped = clipped_fraction(mono, rules.clip_level)
    if clipped > rules.max_clipped_fraction:
        raise RejectedInput("clipped", f"{clipped:.2%} of samples at full scale")
    wav = resample(mono, sample_rate, SAMPLE_RATE)
    if is_silent(wav, rules.silence_threshold_db):
        raise RejectedInput("silent", f"peak below {rules.silence_threshold_db} dBFS")
    if rules.trim:
        wav = trim_silence(wav, SAMPLE_RATE, rules.trim_threshold_db, keep_seconds=rules.trim_keep_seconds)
    duration = wav.numel() / SAMPLE_RATE
    if duration < rules.min_seconds:
        raise RejectedInput("too_short", f"{duration:.2f} s after trimming, minimum {rules.min_seconds} s")
    if duration > rules.max_seconds:
        raise RejectedInput(
            "too_long", f"{duration:.2f} s after trimming, maximum {rules.max_seconds:g} s. {LONG_WITH_TEXT_HINT}")
    if rules.loudness:
        wav = normalize_loudness(wav, SAMPLE_RATE, rules.target_lufs, rules.peak_limit)
    return wav.contiguous(), notes


def phonemize_text(text: str, language: str) -> Any:
    """Run the v2 text frontend; unusable text becomes a ``RejectedInput``."""
    from gpt_sovits_train.text.frontend import UnsupportedTextError, phonemize

    if not text or not text.strip():
        raise RejectedInput("missing_transcript", "empty transcript; " + UNTRANSCRIBED_HINT)
    try:
        result = phonemize(text, language)
    except UnsupportedTextError as error:
        raise RejectedInput("unsupported_text", str(error)) from error
    if not result.ids:
        raise RejectedInput("unsupported_text", f"no phones produced for {text!r}")
    return result


def word2ph_of(phonemized: Any) -> torch.Tensor:
    """Phones per character for Chinese runs, one "word" per non-Chinese run, so it always sums to P."""
    counts: list[int] = []
    for run in phonemized.runs:
        if run.word2ph is not None:
            counts.extend(run.word2ph)
        elif run.phones:
            counts.append(len(run.phones))
    return torch.tensor(counts, dtype=torch.long)


def bert_of(phonemized: Any, bert: Any) -> torch.Tensor | None:
    """BERT vectors for Chinese runs, zeros elsewhere; ``None`` when nothing is Chinese (readers use zeros)."""
    runs = phonemized.runs
    if bert is None or not any(run.language == "zh" and run.phones for run in runs):
        return None
    parts = []
    for run in runs:
        if run.language == "zh" and run.word2ph is not None and run.phones:
            parts.append(bert(run.norm_text, run.word2ph))
        else:
            parts.append(torch.zeros(BERT_DIM, len(run.phones)))
    return torch.cat(parts, dim=1)


def build_sample(utterance: Utterance, key: str, rules: AudioRules, extractors: Extractors) -> dict[str, Any]:
    if not utterance.text.strip():  # before decoding: nothing to train on, however good the audio
        raise RejectedInput("missing_transcript", "empty transcript; " + UNTRANSCRIBED_HINT)
    wav, notes = load_clean_audio(utterance.audio_path, rules)
    return features_sample(utterance, key, wav, notes, extractors, rules)


def features_sample(
    utterance: Utterance,
    key: str,
    wav: torch.Tensor,
    notes: list[str],
    extractors: Extractors,
    rules: AudioRules,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A cleaned 32 kHz clip and its transcript → one schema sample (text checks, phonemes, features)."""
    seconds = wav.numel() / SAMPLE_RATE
    check_text_rate(len(utterance.text), seconds, rules, "characters")
    phonemized = phonemize_text(utterance.text, utterance.language)
    check_text_rate(len(phonemized.ids), seconds, rules)
    wav16 = resample(wav, SAMPLE_RATE, SSL_SAMPLE_RATE)
    half = torch.float16 if extractors.store_float16 else torch.float32
    ssl = extractors.ssl(wav16)
    sample: dict[str, Any] = {
        "key": key,
        "audio": wav,
        "phone_ids": torch.tensor(phonemized.ids, dtype=torch.long),
        "word2ph": word2ph_of(phonemized),
        "ssl": ssl.to(half),
        "meta": {
            "speaker": utterance.speaker,
            "language": phonemized.language,
            "text": utterance.text,
            "norm_text": phonemized.norm_text,
            "phones": list(phonemized.phones),
            "duration": round(wav.numel() / SAMPLE_RATE, 4),
            "sample_rate": SAMPLE_RATE,
            "source": utterance.audio_path,
            "notes": notes,
            **(extra_meta or {}),
        },
    }
    bert = bert_of(phonemized, extractors.bert)
    if bert is not None:
        sample["bert"] = bert.to(half)
    if extractors.semantic is not None:  # from the stored precision, so loaders re-deriving codes agree
        sample["semantic"] = extractors.semantic(sample["ssl"].float()).long().reshape(-1)
    if extractors.speaker is not None:
        sample["speaker_embedding"] = extractors.speaker(wav16).float()
    if extractors.codec is not None:
        sample["encodec"] = extractors.codec(wav, SAMPLE_RATE).long()
    return sample


def process_utterance(
    utterance: Utterance, key: str, rules: AudioRules, extractors: Extractors
) -> dict[str, Any] | Skip:
    """One input → a sample, or a Skip; never raises for bad input (unexpected errors become ``processing_error``)."""
    try:
        return build_sample(utterance, key, rules, extractors)
    except RejectedInput as rejected:
        return Skip(utterance.audio_path, rejected.reason, rejected.detail)
    except Exception as error:  # a broken input must not stop a long run; the report keeps the message
        return Skip(utterance.audio_path, "processing_error", f"{type(error).__name__}: {error}")


def assign_keys(utterances: list[Utterance]) -> list[str]:
    """WebDataset-safe, unique keys: ``speaker__id`` with a numeric suffix on collisions."""
    seen: dict[str, int] = {}
    keys = []
    for utterance in utterances:
        base = safe_key(f"{utterance.speaker}__{utterance.utterance_id}")
        count = seen.get(base, 0)
        seen[base] = count + 1
        keys.append(base if count == 0 else f"{base}_{count}")
    return keys

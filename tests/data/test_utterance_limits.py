"""Inputs that would cost unbounded work are refused cheaply: over-long files from their header, transcripts
far too long for their audio before they reach the phonemizer."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf

from gpt_sovits_train.data.sources import Skip, Utterance
from gpt_sovits_train.data.utterance import AudioRules, Extractors, RejectedInput, check_text_rate, process_utterance

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def long_recording(path: Path, minutes: float, rate: int = 8000) -> Path:
    """A long, almost silent FLAC written block by block (small on disk, large once decoded)."""
    block = (np.sin(np.arange(rate * 10) * 0.05) * 0.3).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16", format="FLAC") as handle:
        for _ in range(int(minutes * 6)):
            handle.write(block)
    return path


def test_a_long_file_is_rejected_from_its_header_without_being_decoded(tmp_path):
    path = long_recording(tmp_path / "lecture.flac", minutes=10)  # 4.8 M samples: 19 MB float32 at 8 kHz
    utterance = Utterance("lecture", str(path), "x", "en", "A lecture.")
    tracemalloc.start()
    result = process_utterance(utterance, "x__lecture", AudioRules(), Extractors(ssl=None))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(result, Skip) and result.reason == "too_long", result
    assert "600.0 s from the file header" in result.detail
    assert peak < 4_000_000, f"{peak} bytes allocated: the file was decoded"


def test_a_transcript_far_too_long_for_its_clip_is_skipped_before_phonemizing(tmp_path):
    clip = str(DEMO / "ava" / "ava_000.flac")
    page = "The quick brown fox jumps over the lazy dog. " * 400  # 18,000 characters on a 3 s clip
    result = process_utterance(Utterance("p", clip, "x", "en", page), "x__p", AudioRules(), Extractors(ssl=None))
    assert isinstance(result, Skip) and result.reason == "implausible_text_length", result
    assert "characters" in result.detail and "max_phones_per_second=30" in result.detail


def test_the_phone_rate_bound_is_configurable_and_spares_normal_speech():
    rules = AudioRules(max_phones_per_second=30.0)
    check_text_rate(40, 3.0, rules)  # 13 phones/s: ordinary speech
    check_text_rate(80, 3.0, rules, "characters")
    for units, what in ((100, "phones"), (400, "characters")):
        try:
            check_text_rate(units, 3.0, rules, what)
        except RejectedInput as rejected:
            assert rejected.reason == "implausible_text_length"
        else:
            raise AssertionError(f"{units} {what} in 3 s passed")
    check_text_rate(100, 3.0, AudioRules(max_phones_per_second=40.0))

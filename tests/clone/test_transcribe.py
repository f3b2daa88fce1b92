"""ASR backends and the editable .list file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits_train.audio.asr import PocketsphinxASR, TransformersASR, guess_language
from gpt_sovits_train.clone.transcribe import ListEntry, read_list, write_list

REPO = Path(__file__).resolve().parents[2]


def test_pocketsphinx_transcribes_demo_english_speech() -> None:
    pytest.importorskip("pocketsphinx")
    wav, sr = sf.read(REPO / "data/demo/ava/ava_000.flac", dtype="float32")
    result = PocketsphinxASR()(wav, sr)  # truth: "The morning train to the coast leaves at seven fifteen."
    assert result.language == "en"
    assert "seven" in result.text.split()


def test_pocketsphinx_refuses_chinese() -> None:
    pytest.importorskip("pocketsphinx")
    with pytest.raises(ValueError, match="TransformersASR"):
        PocketsphinxASR(language="zh")


def test_transformers_pipeline_runs_a_local_random_ctc_model(random_ctc_asr: Path) -> None:
    asr = TransformersASR(str(random_ctc_asr), language="en")
    wav = 0.1 * np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    result = asr(wav, 24000)
    assert isinstance(result.text, str) and result.language == "en"
    assert set(result.text) <= set("abcdefghijklmnopqrstuvwxyz' ")


def test_transformers_missing_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="local folder"):
        TransformersASR(str(tmp_path / "nope"))


def test_language_guess() -> None:
    assert guess_language("今天天气很好") == "zh"
    assert guess_language("こんにちは世界") == "ja"
    assert guess_language("hello there") == "en"


def test_list_round_trip_and_malformed_line(tmp_path: Path) -> None:
    entries = [ListEntry("seg/a.wav", "me", "en", "hello | world"), ListEntry("seg/b.wav", "me", "zh", "你好")]
    write_list(tmp_path / "x.list", entries)
    back = read_list(tmp_path / "x.list")
    assert back[0].text == "hello world" and back[1] == entries[1]
    (tmp_path / "bad.list").write_text("a|b|c\n")
    with pytest.raises(ValueError, match=r"bad\.list:1"):
        read_list(tmp_path / "bad.list")

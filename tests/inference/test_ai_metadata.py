"""Every format we write carries the AI-generated notice naming the model, and the reader finds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits_train.audio.ai_metadata import (
    AI_NOTICE,
    AIMetadata,
    is_marked_ai_generated,
    read_ai_metadata,
    write_audio_with_ai_metadata,
)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_written_audio_is_marked(tmp_path: Path, suffix: str) -> None:
    if suffix == ".mp3" and "MP3" not in sf.available_formats():
        pytest.skip("libsndfile here has no MP3 encoder")
    wav = 0.1 * np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32)
    path = tmp_path / f"out{suffix}"
    write_audio_with_ai_metadata(path, wav, 32000, AIMetadata(model="demo-voice-v2"))
    fields = read_ai_metadata(path)
    assert AI_NOTICE in fields["comment"]
    assert "demo-voice-v2" in fields["comment"]
    assert is_marked_ai_generated(path)
    data, rate = sf.read(path)
    assert rate == 32000
    assert abs(len(data) - 16000) < 2000  # lossy codecs pad a little


def test_unmarked_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "plain.wav"
    sf.write(path, np.zeros(100, dtype=np.float32), 32000)
    assert not is_marked_ai_generated(path)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported output format"):
        write_audio_with_ai_metadata(tmp_path / "x.aac", np.zeros(10), 32000, AIMetadata(model="m"))

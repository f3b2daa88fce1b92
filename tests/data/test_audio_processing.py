"""Audio decode/encode and the clean-up steps data preparation relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits_train.audio.io import AudioDecodeError, decode_audio, encode_audio, load_mono, write_audio
from gpt_sovits_train.audio.processing import (
    clipped_fraction,
    frame_rms_db,
    is_silent,
    loudness_lufs,
    normalize_loudness,
    trim_silence,
)

RATE = 32000


def tone(seconds: float, amplitude: float = 0.3, rate: int = RATE) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return amplitude * torch.sin(2 * torch.pi * 220.0 * t)


def test_decode_mixes_and_resamples(tmp_path):
    stereo = np.stack([tone(1.0, rate=22050).numpy(), np.zeros(22050, dtype=np.float32)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 22050)
    assert decode_audio(tmp_path / "s.wav").num_channels == 2
    mono = load_mono(tmp_path / "s.wav", RATE)
    assert mono.shape == (RATE,)
    assert float(mono.abs().max()) == pytest.approx(0.15, abs=0.01)  # mean of the tone and silence


def test_corrupt_bytes_raise_a_decode_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioDecodeError, match=r"bad\.wav"):
        decode_audio(tmp_path / "bad.wav")


def test_flac_bytes_round_trip_and_metadata(tmp_path):
    wav = torch.round(tone(0.5) * 32767) / 32768
    assert torch.equal(torch.from_numpy(decode_audio(encode_audio(wav, RATE)).samples[0]), wav)
    path = write_audio(tmp_path / "out.flac", wav, RATE, {"comment": "AI-generated speech"})
    with sf.SoundFile(path) as handle:
        assert handle.comment == "AI-generated speech"
    with pytest.raises(ValueError, match="metadata"):
        write_audio(tmp_path / "x.wav", wav, RATE, {"colour": "red"})


def test_trim_keeps_the_speech_and_drops_the_silence():
    wav = torch.cat([torch.zeros(RATE), tone(1.0), torch.zeros(RATE // 2)])
    trimmed = trim_silence(wav, RATE, keep_seconds=0.05)
    assert 1.0 <= trimmed.numel() / RATE <= 1.2


def test_silence_clipping_and_loudness():
    assert is_silent(torch.zeros(RATE)) and not is_silent(tone(0.1))
    clipped = torch.clamp(tone(1.0, amplitude=2.0), -1, 1)
    assert clipped_fraction(clipped) > 0.3 and clipped_fraction(tone(1.0)) == 0.0
    louder = normalize_loudness(tone(1.0, amplitude=0.01), RATE, target_lufs=-20.0)
    assert loudness_lufs(louder, RATE) == pytest.approx(-20.0, abs=0.1)
    assert float(normalize_loudness(tone(1.0), RATE, target_lufs=0.0).abs().max()) <= 0.95 + 1e-6


def test_loudness_is_lufs_so_pauses_do_not_change_the_speech_level():
    speech = tone(2.0, amplitude=0.05)
    with_pauses = torch.cat([speech[: RATE], torch.zeros(2 * RATE), speech[RATE:], torch.zeros(2 * RATE)])
    plain = normalize_loudness(speech, RATE, target_lufs=-23.0)
    paused = normalize_loudness(with_pauses, RATE, target_lufs=-23.0)
    # The gated LUFS measure ignores the pauses: the speech ends up within about 1 dB either way, where a
    # whole-clip RMS rule would make the paused clip 10*log10(3) = 4.8 dB louder.
    difference_db = 20 * math.log10(float(paused.abs().max()) / float(plain.abs().max()))
    assert abs(difference_db) < 1.5, difference_db
    assert loudness_lufs(plain, RATE) == pytest.approx(-23.0, abs=0.1)


def test_numpy_and_torch_signals_share_one_implementation():
    wav = torch.cat([torch.zeros(RATE // 2), tone(1.0), torch.zeros(RATE // 2)])
    array = wav.numpy()
    assert np.allclose(frame_rms_db(array, 400, 160), frame_rms_db(wav, 400, 160).numpy(), atol=1e-4)
    assert isinstance(normalize_loudness(array, RATE), np.ndarray)
    assert np.allclose(normalize_loudness(array, RATE), normalize_loudness(wav, RATE).numpy(), atol=1e-6)
    assert trim_silence(array, RATE).shape[0] == trim_silence(wav, RATE).numel()

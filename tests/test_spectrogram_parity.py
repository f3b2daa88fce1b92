"""The v2 spectrogram framing reproduces the reference's stored spectrograms."""

import json

import pytest
from safetensors.torch import load_file

from gpt_sovits_train.audio.spectrogram import linear_spectrogram, mel_spectrogram, spec_to_mel


@pytest.fixture(scope="module")
def fixture(ref_dir):
    meta = json.loads((ref_dir / "tiny_sovits.json").read_text())
    return load_file(str(ref_dir / "tiny_sovits.safetensors")), meta["recommended_tolerances"]


def _close(actual, expected, tol):
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= tol["atol"] + tol.get("rtol", 0) * expected.abs().max().item()


def test_linear_spectrogram_matches_reference(fixture):
    tensors, tols = fixture
    spec = linear_spectrogram(tensors["input.decode.ref_wav"].float())
    _close(spec, tensors["output.decode.refer_spec"], tols["output.decode.refer_spec"])


def test_mel_matches_reference(fixture):
    tensors, tols = fixture
    mel = spec_to_mel(tensors["output.decode.refer_spec"])
    _close(mel, tensors["output.mel.spec_to_mel_of_refer"], tols["output.mel.spec_to_mel_of_refer"])
    mel_wav = mel_spectrogram(tensors["input.decode.ref_wav"].float())
    _close(mel_wav, tensors["output.mel.mel_spectrogram_of_ref_wav"], tols["output.mel.mel_spectrogram_of_ref_wav"])

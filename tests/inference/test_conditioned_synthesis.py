"""The synthesizer feeds the SoVITS options of issue 5: an ECAPA embedding for ``speaker_dim > 0`` networks and
EnCodec prompt tokens for ``content_source="encodec"`` networks; and SoVITS preparation for inference keeps the
decoded audio. Tiny random-init models throughout (GPT: the tiny reference weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file

from gpt_sovits_train.features.codec import EncodecTokenizer, codec_content_tokens
from gpt_sovits_train.features.random_init import make_encodec
from gpt_sovits_train.features.speaker import EcapaSpeakerEncoder
from gpt_sovits_train.features.ssl import HubertExtractor
from gpt_sovits_train.inference.factory import decoder_generate_fn
from gpt_sovits_train.inference.sovits_runtime import (
    PackedConv1d,
    PackedConvTranspose1d,
    fold_weight_norms,
    prepare_sovits_for_inference,
)
from gpt_sovits_train.inference.synthesizer import Reference, SamplingSettings, Synthesizer
from gpt_sovits_train.interchange.t2s_decode import CachedT2S

CONF = Path(__file__).resolve().parents[2] / "conf" / "model" / "sovits"


def _tiny_sovits(preset: str, seed: int = 0) -> torch.nn.Module:
    """A tiny generator from ``conf/model/sovits/<preset>.yaml`` (resolving its ``defaults: [tiny]``)."""
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "tiny.yaml"), OmegaConf.load(CONF / f"{preset}.yaml"))
    cfg.pop("defaults", None)
    torch.manual_seed(seed)
    return instantiate(cfg).eval()


def _clip(path: Path, seconds: float, pitch: float) -> Path:
    rate = 32000
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def generate(ref_dir: Path, t2s_meta: dict):
    weights = {k[7:]: v for k, v in load_file(str(ref_dir / "tiny_t2s.safetensors")).items() if k.startswith("weight.")}
    return decoder_generate_fn(CachedT2S(weights, heads=t2s_meta["config"]["model"]["head"]))


def _synthesizer(generate, sovits, random_feature_models, **features) -> Synthesizer:
    return Synthesizer(
        generate, prepare_sovits_for_inference(sovits), HubertExtractor(random_feature_models["ssl"], "cpu"), **features
    )


@pytest.mark.slow
def test_speaker_embedding_reaches_the_decoder(generate, random_feature_models, tmp_path: Path) -> None:
    sovits = _tiny_sovits("tiny_ecapa")
    with torch.no_grad():  # spk_proj starts at zero (a no-op); give it weights so the embedding shows in the audio
        torch.nn.init.normal_(sovits.spk_proj.weight, std=0.5)
    with pytest.raises(ValueError, match="speaker_dim"):
        _synthesizer(generate, sovits, random_feature_models)
    synth = _synthesizer(
        generate, sovits, random_feature_models, speaker_encoder=EcapaSpeakerEncoder(random_feature_models["speaker"])
    )
    clip = _clip(tmp_path / "ref.wav", 3.2, 150)
    low, high = _clip(tmp_path / "low.wav", 8.0, 110), _clip(tmp_path / "high.wav", 8.0, 290)
    tokens = torch.randint(0, 1024, (30,), generator=torch.Generator().manual_seed(0))
    settings = SamplingSettings(noise_scale=0.0)
    text = torch.tensor([[5, 9, 12, 40]])
    wavs = []
    for speaker_audio in (low, high):
        ref = synth.prepare_reference(Reference(clip, None, "en", speaker_audio=speaker_audio))
        assert ref.speaker_embedding is not None and ref.speaker_embedding.shape == (192,)
        wavs.append(synth.decode_tokens(tokens, text, ref, settings))
    assert wavs[0].shape == wavs[1].shape and torch.isfinite(wavs[0]).all()
    assert not torch.allclose(wavs[0], wavs[1])
    settings = SamplingSettings(noise_scale=0.0, top_k=5, max_seconds=1.0, seed=0)
    result = synth.synthesize("Good morning.", "en", Reference(clip, None, "en", speaker_audio=low), settings)
    assert result.wav.numel() > 0 and torch.isfinite(result.wav).all()


@pytest.mark.slow
def test_encodec_network_takes_its_prompt_from_the_codec(
    generate, random_feature_models, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sovits = _tiny_sovits("tiny_encodec")
    clip = _clip(tmp_path_factory.mktemp("ref") / "ref.wav", 3.2, 150)
    reference = Reference(clip, "Hello there.", "en")
    with pytest.raises(ValueError, match=r"features\.codec"):
        _synthesizer(generate, sovits, random_feature_models).prepare_reference(reference)
    codec = EncodecTokenizer(make_encodec(tmp_path_factory.mktemp("encodec")), device="cpu")
    synth = _synthesizer(generate, sovits, random_feature_models, codec_tokenizer=codec)
    ref = synth.prepare_reference(reference)
    wav16 = torch.cat([synth_resample(clip), torch.zeros(4800)])
    expected = codec_content_tokens(codec(wav16, 16000))
    assert torch.equal(ref.prompt_semantic, expected.unsqueeze(0))
    result = synth.synthesize("Good morning.", "en", ref, SamplingSettings(top_k=5, max_seconds=1.0, seed=0))
    assert result.wav.numel() > 0 and torch.isfinite(result.wav).all()


def synth_resample(path: Path) -> torch.Tensor:
    from gpt_sovits_train.audio.io import load_mono, resample

    return resample(load_mono(path, 32000), 32000, 16000)


def test_prepared_sovits_decodes_the_same_audio() -> None:
    sovits = _tiny_sovits("tiny")
    codes = torch.randint(0, 1024, (1, 1, 20), generator=torch.Generator().manual_seed(1))
    text = torch.tensor([[3, 8, 21, 7, 30]])
    spec = torch.rand(1, 1025, 40, generator=torch.Generator().manual_seed(2))
    before = sovits.decode(codes, text, spec, noise_scale=0.0)
    prepared = prepare_sovits_for_inference(sovits)
    names = [name for name, _ in prepared.named_parameters()]
    assert not any(name.endswith(("weight_g", "weight_v")) for name in names)
    assert not any(name.startswith("enc_q.") for name in names)
    assert fold_weight_norms(prepared) == 0  # nothing left to fold
    torch.testing.assert_close(prepared.decode(codes, text, spec, noise_scale=0.0), before, atol=1e-5, rtol=1e-4)
    if torch.backends.mkldnn.is_available():  # the CPU default: the decoder's convolutions run prepacked
        kinds = {type(module) for module in prepared.dec.modules()}
        assert {PackedConv1d, PackedConvTranspose1d} <= kinds
        assert [name for name, _ in prepared.named_parameters()] == names  # same parameters and keys
    half = prepare_sovits_for_inference(_tiny_sovits("tiny"), "bf16")
    approx = half.decode(codes, text, spec.bfloat16(), noise_scale=0.0).float()
    assert approx.shape == before.shape and torch.isfinite(approx).all()
    with pytest.raises(ValueError, match="precision"):
        prepare_sovits_for_inference(prepared, "fp8")


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_packed_decoder_convolutions_match_plain_ones_and_follow_weight_changes() -> None:
    """Each packed convolution computes what the plain layer computes (float32, another summation order), also
    for lengths other than the packing hint; an in-place weight change is picked up; a cast falls back."""
    torch.manual_seed(0)
    layers = [
        (torch.nn.Conv1d(16, 8, 7, padding=3), PackedConv1d, 100),
        (torch.nn.Conv1d(8, 8, 3, dilation=5, padding=5), PackedConv1d, 37),
        (torch.nn.ConvTranspose1d(16, 8, 16, 8, padding=4), PackedConvTranspose1d, 23),
    ]
    for layer, packed_class, length in layers:
        x = torch.randn(2, layer.in_channels, length)
        with torch.no_grad():
            expected = layer(x)
            packed = type(layer)(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                 layer.padding, dilation=layer.dilation)
            packed.load_state_dict(layer.state_dict())
            packed.__class__ = packed_class
            torch.testing.assert_close(packed(x), expected, atol=1e-5, rtol=1e-5)
            assert packed._packed is not None and packed._packed.is_mkldnn
            packed.weight.mul_(2.0)
            layer.weight.mul_(2.0)
            torch.testing.assert_close(packed(x), layer(x), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(packed.double()(x.double()), layer.double()(x.double()))

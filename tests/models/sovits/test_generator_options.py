"""SoVITSGenerator options beyond v2: ECAPA speaker conditioning, iSTFT head, EnCodec content, checkpointing.

Models are built smaller than the `tiny` preset (few posterior/flow layers) so each test takes about a second;
the option code paths do not depend on those depths.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch.utils.flop_counter import FlopCounterMode

from gpt_sovits_train.models.sovits.istft import ISTFTGenerator
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator

CONF = Path(__file__).resolve().parents[3] / "conf"
HOP = 640
SMALL = {
    "segment_size": 12,
    "inter_channels": 32,
    "filter_channels": 64,
    "n_layers": 2,
    "upsample_initial_channel": 32,
    "posterior_layers": 2,
    "flow_layers": 1,
    "n_flows": 1,
}
B, T25 = 2, 16


def build(**options) -> SoVITSGenerator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # legacy weight_norm, kept for v2 key names
        return SoVITSGenerator(**SMALL, **options)


def batch(content_source: str = "ssl") -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    content = (
        torch.randint(0, 1024, (B, T25), generator=generator)
        if content_source == "encodec"
        else torch.randn(B, 768, 2 * T25, generator=generator)
    )
    return {
        "content": content,
        "spec": torch.rand(B, 1025, 2 * T25, generator=generator),
        "spec_lengths": torch.tensor([2 * T25, 2 * T25 - 3]),
        "text": torch.randint(1, 732, (B, 7), generator=generator),
        "text_lengths": torch.tensor([7, 5]),
        "speaker": torch.randn(B, 192, generator=generator),
    }


def run_forward(model: SoVITSGenerator, data: dict, **extra):
    spk = data["speaker"] if model.speaker_dim else None
    return model(
        data["content"], data["spec"], data["spec_lengths"], data["text"], data["text_lengths"],
        speaker_embedding=spk, **extra,
    )


def fixed_randomness(data: dict, inter_channels: int = SMALL["inter_channels"]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return {
        "posterior_noise": torch.randn(B, inter_channels, data["spec"].shape[-1], generator=generator),
        "slice_uniform": torch.tensor([0.3, 0.7]),
    }


def decode_codes(model: SoVITSGenerator, data: dict, **extra) -> torch.Tensor:
    codes = model.extract_latent(data["content"])
    spk = data["speaker"] if model.speaker_dim else None
    return model.decode(codes, data["text"], data["spec"][:, :, :20], noise_scale=0.0, speaker_embedding=spk, **extra)


OPTIONS = {
    "ecapa": {"speaker_dim": 192},
    "istft": {"decoder": "istft"},
    "encodec": {"content_source": "encodec"},
    "checkpointing": {"gradient_checkpointing": True},
    "all": {"speaker_dim": 192, "decoder": "istft", "content_source": "encodec", "gradient_checkpointing": True},
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_trains_and_decodes(name):
    options = OPTIONS[name]
    model = build(**options).train()
    data = batch(options.get("content_source", "ssl"))
    out = run_forward(model, data)
    assert out.y_hat.shape == (B, 1, SMALL["segment_size"] * HOP)
    loss = out.y_hat.abs().mean() + out.z_p.pow(2).mean() + out.m_p.mean()
    assert torch.isfinite(loss)
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("dec.") for n in trained) and any(n.startswith("enc_p.") for n in trained)
    if options.get("speaker_dim"):
        # Zero-initialised, yet trainable: the weight's gradient is (dL/d out) x embedding, which is non-zero.
        assert "spk_proj.weight" in trained
    if options.get("content_source") == "encodec":
        assert "content_emb.weight" in trained
    model.eval()
    wav = decode_codes(model, data)
    assert wav.shape == (B, 1, 2 * T25 * HOP)
    assert torch.isfinite(wav).all()


def test_speaker_embedding_changes_output_once_projection_is_trained():
    model = build(speaker_dim=192).eval()
    data = batch()
    other = dict(data, speaker=torch.randn(B, 192))
    # Zero-initialised projection: a v2-initialised model is unchanged by whatever speaker it is given.
    torch.testing.assert_close(decode_codes(model, data), decode_codes(model, other))
    with torch.no_grad():
        model.spk_proj.weight.normal_(0.0, 5.0)

    def run(inputs: dict) -> dict[str, torch.Tensor]:
        codes = model.extract_latent(inputs["content"])
        return model.decode_with_intermediates(
            codes, inputs["text"], inputs["spec"][:, :, :20], noise_scale=0.0, speaker_embedding=inputs["speaker"]
        )

    first, second = run(data), run(other)
    for name, share in (("ge", 0.1), ("z", 0.1), ("wav", 1e-3)):
        # An untrained decoder damps its input a lot, hence the smaller (still far above rounding) share for wav.
        assert (first[name] - second[name]).abs().max() > share * first[name].abs().max(), name


def test_speaker_embedding_is_required_and_refused_as_configured():
    data = batch()
    conditioned = build(speaker_dim=192)
    with pytest.raises(ValueError, match=r"features\.speaker"):
        conditioned(data["content"], data["spec"], data["spec_lengths"], data["text"], data["text_lengths"])
    with pytest.raises(ValueError, match="speaker audio"):
        conditioned.eval().decode(conditioned.extract_latent(data["content"]), data["text"], data["spec"])
    with pytest.raises(ValueError, match=r"\[B, 192\]"):
        run_forward(conditioned, dict(data, speaker=torch.randn(B, 64)))
    plain = build()
    with pytest.raises(ValueError, match="speaker_dim=0"):
        plain(data["content"], data["spec"], data["spec_lengths"], data["text"], data["text_lengths"],
              speaker_embedding=data["speaker"])


def test_istft_head_matches_hifigan_lengths():
    data = batch()
    hifigan, istft = build().eval(), build(decoder="istft").eval()
    assert isinstance(istft.dec, ISTFTGenerator)
    latent = torch.randn(1, SMALL["inter_channels"], 13)
    style = torch.randn(1, 512, 1)
    assert istft.dec(latent, style).shape == hifigan.dec(latent, style).shape == (1, 1, 13 * HOP)
    assert decode_codes(istft, data).shape == decode_codes(hifigan, data).shape


def test_istft_head_needs_less_compute_than_hifigan():
    """Counted, not timed: the stages HiFi-GAN runs near the audio rate are what the iSTFT head drops.

    The FLOP counter sees the convolutions; the 40-point iSTFT it does not count is a few FLOPs per sample.
    """
    hifigan, istft = build().eval(), build(decoder="istft").eval()
    latent, style = torch.randn(1, SMALL["inter_channels"], 25), torch.randn(1, 512, 1)

    def flops(model: SoVITSGenerator) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.dec(latent, style)
        return counter.get_total_flops()

    assert flops(istft) < 0.7 * flops(hifigan)  # 0.60 at these sizes, 0.51 at v2 sizes


def test_istft_rates_must_give_the_hop():
    with pytest.raises(ValueError, match="640"):
        build(decoder="istft", istft_upsample_rates=[8, 8], istft_upsample_kernel_sizes=[16, 16], istft_hop=8)


def test_encodec_content_latent_and_validation():
    model = build(content_source="encodec").eval()
    assert model.content_source == "encodec"
    assert not hasattr(model, "quantizer") and not hasattr(model, "ssl_proj")
    assert model.freeze_quantizer is False  # no tokenizer to freeze in this mode
    codes = torch.randint(0, 1024, (B, T25))
    torch.testing.assert_close(model.extract_latent(codes), codes.unsqueeze(1))
    torch.testing.assert_close(model.extract_latent(codes.unsqueeze(1)), codes.unsqueeze(1))
    with pytest.raises(ValueError, match="1024"):
        model.extract_latent(torch.full((1, 5), 1024))
    with pytest.raises(ValueError, match="integer EnCodec codes"):
        model.extract_latent(torch.randn(1, 768, 10))
    out = run_forward(model.train(), batch("encodec"))
    assert float(out.commit_loss) == 0.0
    # Decoding looks the codes up in the same table the training forward used.
    model.eval()
    wav = model.decode(codes.unsqueeze(1), batch()["text"], batch()["spec"], noise_scale=0.0)
    assert wav.shape == (B, 1, 2 * T25 * HOP)


def test_ssl_generator_refuses_codes_as_content():
    model = build()
    data = batch("encodec")
    with pytest.raises(ValueError, match="content_source='encodec'"):
        model(data["content"], data["spec"], data["spec_lengths"], data["text"], data["text_lengths"])


def _loss_and_grads(model: SoVITSGenerator, data: dict, randomness: dict):
    torch.manual_seed(5)  # same dropout masks in both runs
    model.zero_grad()
    out = run_forward(model, data, **randomness)
    loss = out.y_hat.abs().mean() + out.z_p.pow(2).mean() + (out.m_p - out.logs_p).pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _saved_bytes(model: SoVITSGenerator, data: dict, randomness: dict) -> int:
    """Bytes of activations autograd keeps for backward during one forward."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run_forward(model, data, **randomness)
    return total


@pytest.mark.parametrize("name", ["ecapa", "istft"])
def test_gradient_checkpointing_gives_identical_loss_and_grads(name):
    plain = build(**OPTIONS[name]).train()
    checkpointed = build(**OPTIONS[name], gradient_checkpointing=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    data = batch()
    randomness = fixed_randomness(data)
    loss_plain, grads_plain = _loss_and_grads(plain, data, randomness)
    loss_ckpt, grads_ckpt = _loss_and_grads(checkpointed, data, randomness)
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=0, atol=0)
    assert grads_ckpt.keys() == grads_plain.keys() and grads_plain
    for key, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[key], grad, rtol=1e-5, atol=1e-7, msg=key)
    # And it does what it is for: far fewer activations held for backward.
    assert _saved_bytes(checkpointed, data, randomness) < 0.5 * _saved_bytes(plain, data, randomness)


def _compose_net(preset: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["model=sovits", f"model/sovits@model.net={preset}"])
    return cfg.model.net


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("tiny_ecapa", {"speaker_dim": 192, "decoder": "hifigan", "content_source": "ssl"}),
        ("tiny_istft", {"speaker_dim": 0, "decoder": "istft", "content_source": "ssl"}),
        ("tiny_encodec", {"speaker_dim": 0, "decoder": "hifigan", "content_source": "encodec"}),
        ("v2_ecapa", {"speaker_dim": 192, "decoder": "hifigan", "content_source": "ssl"}),
    ],
)
def test_presets_compose_onto_their_base(preset, expected):
    net_cfg = _compose_net(preset)
    base = _compose_net("v2" if preset.startswith("v2") else "tiny")
    assert {k: v for k, v in net_cfg.items() if k in base} == dict(base)
    with torch.device("meta"), warnings.catch_warnings():  # meta: check the structure without filling weights
        warnings.simplefilter("ignore", FutureWarning)
        model = hydra.utils.instantiate(net_cfg)
    assert {k: getattr(model, k) for k in expected} == expected


def test_v2_ecapa_loads_v2_weights_leaving_only_spk_proj_missing(ref_dir):
    manifest = json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"]["sovits_generator_v2"]
    v2_shapes = {entry["key"]: tuple(entry["shape"]) for entry in manifest["state_dict"]}
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = hydra.utils.instantiate(_compose_net("v2_ecapa"))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    documented = {"spk_proj.weight", "spk_proj.bias"}
    assert set(model.keys_not_in_v2()) == documented
    assert {k: s for k, s in ours.items() if k not in documented} == v2_shapes
    v2_weights = {k: torch.empty(shape, device="meta") for k, shape in v2_shapes.items()}
    result = model.load_state_dict(v2_weights, strict=False, assign=True)
    assert set(result.missing_keys) == documented and not result.unexpected_keys

"""The v2 generator loaded from tiny_sovits.safetensors reproduces the reference decode and training forward."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from gpt_sovits_train.audio.spectrogram import mel_spectrogram, spec_to_mel
from gpt_sovits_train.models.sovits.losses import kl_loss, mel_reconstruction_loss
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator, slice_segments
from tests.reference_fixtures import segment_frames


@pytest.fixture(scope="module")
def reference(ref_dir):
    tensors = load_file(str(ref_dir / "tiny_sovits.safetensors"))
    meta = json.loads((ref_dir / "tiny_sovits.json").read_text())
    cfg = meta["config"]
    model_cfg = {
        k: v
        for k, v in cfg["model"].items()
        if k not in ("resblock", "n_layers_q", "use_spectral_norm", "semantic_frame_rate", "version")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoVITSGenerator(
            spec_channels=cfg["data"]["filter_length"] // 2 + 1,
            segment_size=cfg["train"]["segment_size"] // cfg["data"]["hop_length"],
            **model_cfg,
        )
    weights = {k[len("weight.") :]: v for k, v in tensors.items() if k.startswith("weight.")}
    model.load_state_dict(weights, strict=True)
    return model.eval(), tensors, meta["recommended_tolerances"], meta


def _close(name, actual, tensors, tol):
    torch.testing.assert_close(actual.float(), tensors[name].float(), atol=tol[name]["atol"], rtol=tol[name]["rtol"])


def test_decode_matches_reference(reference):
    model, t, tol, _ = reference
    out = model.decode_with_intermediates(
        t["output.latent.codes"], t["input.decode.text"], t["output.decode.refer_spec"], noise_scale=0.0
    )
    for name in ("ge", "m_p", "logs_p", "z", "wav"):
        _close(f"output.decode.{name}", out[name], t, tol)


def test_train_forward_matches_reference(reference):
    model, t, tol, _ = reference
    with torch.no_grad():
        out = model(
            t["input.train.ssl"],
            t["input.train.spec"],
            t["input.train.spec_lengths"],
            t["input.train.text"],
            t["input.train.text_lengths"],
            posterior_noise=t["input.train.posterior_noise"],
            slice_uniform=t["input.train.slice_uniform"],
        )
    assert torch.equal(out.ids_slice.long(), t["output.train.ids_slice"].long())
    for name in ("y_hat", "y_mask", "z", "z_p", "m_p", "logs_p", "m_q", "logs_q", "quantized"):
        _close(f"output.train.{name}", getattr(out, name), t, tol)
    _close("output.train.kl_ssl", out.commit_loss.reshape(1), t, tol)
    kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask)
    _close("output.train.loss_kl", kl.reshape(1), t, tol)


def test_commitment_term_is_the_distance_to_the_chosen_codes(reference):
    """The fixture's ``kl_ssl`` is 0 (v2's frozen quantizer runs in eval mode), which a constant passes. Unfrozen, the
    commitment term must be the mean squared distance between the projected features and their nearest codes, the
    codes being the ones the reference chose (``output.latent.codes``)."""
    model, t, _, _ = reference
    projected = model.ssl_proj(t["input.latent.ssl"]).detach()
    model.quantizer.train()
    try:
        _, codes, commit = model.quantizer(projected)
    finally:
        model.quantizer.eval()
    assert torch.equal(codes.reshape(-1), t["output.latent.codes"].reshape(-1))
    embed = model.quantizer.vq.layers[0]._codebook.embed
    nearest = embed[codes.reshape(-1)]  # [T, D]
    expected = torch.nn.functional.mse_loss(nearest, projected[0].transpose(0, 1))
    assert float(commit) > 0
    torch.testing.assert_close(commit, expected, rtol=1e-5, atol=1e-7)


def test_mel_loss_matches_reference(reference):
    _, t, tol, meta = reference
    mel = spec_to_mel(t["input.train.spec"])
    _close("output.train.mel", mel, t, tol)
    y_mel = slice_segments(mel, t["output.train.ids_slice"], segment_frames(meta))
    y_hat_mel = mel_spectrogram(t["output.train.y_hat"].squeeze(1))
    _close("output.train.y_mel", y_mel, t, tol)
    _close("output.train.y_hat_mel", y_hat_mel, t, tol)
    c_mel = meta["config"]["train"]["c_mel"]
    _close("output.train.loss_mel", (c_mel * mel_reconstruction_loss(y_mel, y_hat_mel)).reshape(1), t, tol)


def test_full_size_state_dict_matches_v2_manifest(ref_dir):
    manifest = json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"]["sovits_generator_v2"]
    expected = {entry["key"]: tuple(entry["shape"]) for entry in manifest["state_dict"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoVITSGenerator(
            **manifest["positional_args"],
            **{
                k: v
                for k, v in manifest["kwargs"].items()
                if k
                not in ("n_speakers", "resblock", "n_layers_q", "use_spectral_norm", "semantic_frame_rate", "version")
            },
        )
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected

"""Parity of the semantic tokenizer and the loss maths against the tiny_sovits reference fixture."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from gpt_sovits_train.models.sovits.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    kl_loss,
)
from gpt_sovits_train.models.sovits.quantizer import SemanticTokenizer


@pytest.fixture(scope="module")
def fixture(ref_dir):
    tensors = load_file(str(ref_dir / "tiny_sovits.safetensors"))
    meta = json.loads((ref_dir / "tiny_sovits.json").read_text())
    return tensors, meta["recommended_tolerances"]


def _close(actual, expected, tol):
    torch.testing.assert_close(actual.float(), expected.float(), atol=tol["atol"], rtol=tol["rtol"])


def test_extract_latent_codes_exact(fixture):
    tensors, tol = fixture
    tokenizer = SemanticTokenizer().eval()
    weights = {
        k[len("weight.") :]: v for k, v in tensors.items() if k.startswith(("weight.ssl_proj", "weight.quantizer"))
    }
    tokenizer.load_state_dict(weights, strict=True)
    ssl = tensors["input.latent.ssl"]
    with torch.no_grad():
        _close(tokenizer.ssl_proj(ssl), tensors["output.latent.ssl_proj"], tol["output.latent.ssl_proj"])
        codes = tokenizer.extract_latent(ssl)
    assert codes.shape == tensors["output.latent.codes"].shape
    assert torch.equal(codes.long(), tensors["output.latent.codes"].long())


def test_extract_latent_rejects_bad_shape():
    with pytest.raises(ValueError, match="ssl must be"):
        SemanticTokenizer().extract_latent(torch.zeros(768, 10))


def _nested(tensors, kind):
    return [[tensors[f"input.lossmath.fmap_{kind}_{d}_{layer}"] for layer in range(2)] for d in range(2)]


def test_loss_maths_match_reference(fixture):
    tensors, tol = fixture
    d_real = [tensors[f"input.lossmath.d_real_{i}"] for i in range(2)]
    d_fake = [tensors[f"input.lossmath.d_fake_{i}"] for i in range(2)]
    loss_d, r_parts, g_parts = discriminator_loss(d_real, d_fake)
    _close(loss_d.reshape(1), tensors["output.lossmath.discriminator_loss"], tol["output.lossmath.discriminator_loss"])
    _close(
        torch.tensor(r_parts),
        tensors["output.lossmath.discriminator_r_losses"],
        tol["output.lossmath.discriminator_r_losses"],
    )
    _close(
        torch.tensor(g_parts),
        tensors["output.lossmath.discriminator_g_losses"],
        tol["output.lossmath.discriminator_g_losses"],
    )
    loss_g, _ = generator_adversarial_loss(d_fake)
    _close(loss_g.reshape(1), tensors["output.lossmath.generator_loss"], tol["output.lossmath.generator_loss"])
    loss_fm = feature_matching_loss(_nested(tensors, "real"), _nested(tensors, "fake"))
    _close(loss_fm.reshape(1), tensors["output.lossmath.feature_loss"], tol["output.lossmath.feature_loss"])


def test_kl_loss_matches_reference(fixture):
    tensors, tol = fixture
    args = [tensors[f"output.train.{name}"] for name in ("z_p", "logs_q", "m_p", "logs_p", "y_mask")]
    _close(kl_loss(*args).reshape(1), tensors["output.train.loss_kl"], tol["output.train.loss_kl"])

"""The discriminator's state dict equals the v2 manifest, and it scores waveforms of any length."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator


def test_state_dict_matches_v2_manifest(ref_dir):
    manifest = json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"]["sovits_discriminator_v2"]
    expected = {entry["key"]: tuple(entry["shape"]) for entry in manifest["state_dict"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy weight_norm deprecation notice
        disc = MultiPeriodDiscriminator()
    actual = {k: tuple(v.shape) for k, v in disc.state_dict().items()}
    assert actual == expected
    assert sum(p.numel() for p in disc.parameters()) == manifest["num_parameters"]


def test_scores_and_feature_maps_shapes():
    disc = MultiPeriodDiscriminator(periods=[2, 3])
    real, fake = torch.randn(2, 1, 1001), torch.randn(2, 1, 1001)
    scores_real, scores_fake, fmaps_real, fmaps_fake = disc(real, fake)
    assert len(scores_real) == len(scores_fake) == 3
    assert all(s.shape[0] == 2 for s in scores_real + scores_fake)
    assert [len(f) for f in fmaps_real] == [7, 6, 6] == [len(f) for f in fmaps_fake]


def test_rejects_unbatched_waveform():
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        MultiPeriodDiscriminator(periods=[2])(torch.randn(100), torch.randn(100))


def test_small_discriminator_keeps_the_structure():
    """``max_channels`` narrows every layer (tests and demos) but keeps the sub-discriminators and feature maps."""
    wide, small = MultiPeriodDiscriminator(periods=[2, 3]), MultiPeriodDiscriminator(periods=[2, 3], max_channels=64)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in wide.parameters()) / 50
    scores, fmaps = small.score(torch.randn(2, 1, 3200))
    wide_scores, wide_fmaps = wide.score(torch.randn(2, 1, 3200))
    assert [s.shape for s in scores] == [s.shape for s in wide_scores]
    assert [len(f) for f in fmaps] == [len(f) for f in wide_fmaps]
    with pytest.raises(ValueError, match="power of two"):
        MultiPeriodDiscriminator(max_channels=100)

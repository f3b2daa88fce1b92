"""Speaker conditioning: an ECAPA-TDNN embedding added to the generator's global condition `ge`.

Why added (not concatenated): `ge` [B, gin, 1] feeds every conditioned layer of the v2 generator (MRTE, prior,
posterior, flow, decoder). Adding a projected speaker vector keeps all those shapes, so v2 weights still load,
and a zero-initialised projection makes a v2-initialised model start exactly where v2 is; fine-tuning then
learns how much of the longer-reference speaker identity to mix into the short-reference style vector.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def speaker_projection(speaker_dim: int, gin_channels: int) -> nn.Linear:
    """Zero-initialised Linear(speaker_dim -> gin): contributes nothing until training moves it."""
    proj = nn.Linear(speaker_dim, gin_channels)
    nn.init.zeros_(proj.weight)
    nn.init.zeros_(proj.bias)
    return proj


def add_speaker(ge: Tensor, proj: nn.Linear | None, embedding: Tensor | None) -> Tensor:
    """ge [B, gin, 1] + proj(normalised embedding [B, speaker_dim]) -> [B, gin, 1].

    The embedding is L2-normalised first: ECAPA embeddings are compared by cosine, their norm varies with
    clip length and recording, and only the direction carries the speaker identity.
    """
    if proj is None:
        if embedding is not None:
            raise ValueError(
                "this generator has no speaker conditioning (speaker_dim=0) but a speaker_embedding was given; "
                "build it with speaker_dim=192 (e.g. model/sovits@model.net=tiny_ecapa or v2_ecapa) or pass None"
            )
        return ge
    if embedding is None:
        raise ValueError(
            f"this generator is speaker-conditioned (speaker_dim={proj.in_features}) and needs speaker_embedding "
            f"[B, {proj.in_features}]: prepare the data with features.speaker (ECAPA-TDNN) for training, and give "
            "speaker audio at inference so its ECAPA embedding can be computed"
        )
    if embedding.dim() == 1:
        embedding = embedding.unsqueeze(0)
    if embedding.dim() != 2 or embedding.shape[1] != proj.in_features:
        raise ValueError(f"speaker_embedding must be [B, {proj.in_features}], got shape {tuple(embedding.shape)}")
    if embedding.shape[0] not in (1, ge.shape[0]):
        raise ValueError(f"speaker_embedding batch {embedding.shape[0]} does not match the batch {ge.shape[0]}")
    unit = F.normalize(embedding.to(proj.weight.dtype), dim=-1)
    return ge + proj(unit).unsqueeze(-1).to(ge.dtype)

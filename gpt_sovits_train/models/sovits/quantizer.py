"""Semantic tokens: 50 Hz SSL features -> stride-2 projection (25 Hz) -> residual VQ codes.

State-dict names follow GPT-SoVITS v2 (`ssl_proj.*`, `quantizer.vq.layers.N._codebook.{embed,embed_avg,
cluster_size,inited}`) so official checkpoints load unchanged. The codebook is an EMA codebook in the
reference; v2 fine-tuning keeps it frozen, so this module only stores the EMA buffers (for round trips)
and uses `embed` for nearest-code lookup. Commitment loss is computed so unfrozen training can use it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMACodebook(nn.Module):
    """One codebook; buffers named as the reference's `_codebook` so checkpoints map 1:1."""

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.randn(bins, dim))
        self.register_buffer("embed_avg", self.embed.clone())

    def encode(self, x: Tensor) -> Tensor:
        """Nearest code per frame by the reference's score -(|x|^2 - 2 x.e + |e|^2); x is [N, D]."""
        embed = self.embed.t()
        score = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return score.max(dim=-1).indices

    def decode(self, codes: Tensor) -> Tensor:
        return nn.functional.embedding(codes, self.embed)


class VectorQuantization(nn.Module):
    """Wrapper level kept only so the key path `vq.layers.N._codebook` matches the reference."""

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self._codebook = EMACodebook(dim, bins)


class ResidualVQStack(nn.Module):
    """The reference's `vq` (a stack of residual quantization layers)."""

    def __init__(self, dim: int, bins: int, n_q: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, bins) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    """Residual VQ over [B, D, T] features; returns quantized features, codes [n_q, B, T] and commit loss."""

    def __init__(self, dimension: int = 768, n_q: int = 1, bins: int = 1024) -> None:
        super().__init__()
        self.vq = ResidualVQStack(dimension, bins, n_q)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        residual = x.transpose(1, 2)  # [B, T, D]
        quantized_sum = torch.zeros_like(residual)
        codes: list[Tensor] = []
        commit = torch.zeros((), device=x.device)
        for layer in self.vq.layers:
            book = layer._codebook
            flat = residual.reshape(-1, residual.shape[-1])
            idx = book.encode(flat.float()).view(residual.shape[:-1])
            quantized = book.decode(idx).to(residual.dtype)
            if self.training:
                commit = commit + nn.functional.mse_loss(quantized.detach(), residual)
                # Straight-through estimator: gradients flow to the encoder as if quantization were identity.
                quantized = residual + (quantized - residual).detach()
            quantized_sum = quantized_sum + quantized
            residual = residual - quantized.detach()
            codes.append(idx)
        return quantized_sum.transpose(1, 2), torch.stack(codes), commit / max(len(self.vq.layers), 1)

    def decode(self, codes: Tensor) -> Tensor:
        """codes [n_q, B, T] -> summed code vectors [B, D, T]."""
        out = None
        for i, layer in enumerate(self.vq.layers[: codes.shape[0]]):
            vec = layer._codebook.decode(codes[i]).transpose(1, 2)
            out = vec if out is None else out + vec
        if out is None:
            raise ValueError("codes must hold at least one quantizer level (shape [n_q, B, T] with n_q >= 1)")
        return out


class SemanticTokenizer(nn.Module):
    """`ssl_proj` + `quantizer` of the v2 generator, usable alone to turn SSL features into semantic codes."""

    def __init__(self, ssl_dim: int = 768, n_q: int = 1, bins: int = 1024) -> None:
        super().__init__()
        self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, kernel_size=2, stride=2)
        self.quantizer = ResidualVectorQuantizer(ssl_dim, n_q, bins)

    def extract_latent(self, ssl: Tensor) -> Tensor:
        """SSL features [B, 768, T] at 50 Hz -> codes [B, n_q, T//2] at 25 Hz."""
        if ssl.dim() != 3:
            raise ValueError(f"ssl must be [B, {self.ssl_proj.in_channels}, T], got shape {tuple(ssl.shape)}")
        _, codes, _ = self.quantizer(self.ssl_proj(ssl))
        return codes.transpose(0, 1)

"""Reference style encoder (`ref_enc`): linear-spectrogram frames -> one global style vector (gin)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LinearNorm(nn.Module):
    """Linear layer wrapped as `.fc` so keys read `spectral.0.fc.weight` as in v2."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class Mish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.tanh(F.softplus(x))


class ConvNorm(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel, padding=(kernel - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    """Gated conv with a residual connection."""

    def __init__(self, channels: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = ConvNorm(channels, 2 * channels, kernel)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.conv1(x).chunk(2, dim=1)
        return x + self.drop(a * torch.sigmoid(b))


class StyleSelfAttention(nn.Module):
    """Multi-head self-attention with temperature sqrt(d_model) (a v2 quirk kept for weight compatibility)."""

    def __init__(self, n_heads: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.d_k = n_heads, d_model // n_heads
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)
        self.temperature = math.sqrt(d_model)
        self.attn_drop = nn.Dropout(dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad_mask: Tensor | None) -> Tensor:
        batch, length, _ = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(batch, length, self.n_heads, self.d_k).permute(0, 2, 1, 3)

        q, k, v = heads(self.w_qs(x)), heads(self.w_ks(x)), heads(self.w_vs(x))
        scores = q @ k.transpose(-2, -1) / self.temperature
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        out = self.attn_drop(torch.softmax(scores, dim=-1)) @ v
        out = out.permute(0, 2, 1, 3).reshape(batch, length, -1)
        return self.drop(self.fc(out)) + x


class MelStyleEncoder(nn.Module):
    """Spectral MLP -> gated convs -> self-attention -> masked temporal mean; output [B, out_dim, 1]."""

    def __init__(
        self,
        in_dim: int = 704,
        hidden: int = 128,
        out_dim: int = 512,
        kernel: int = 5,
        n_heads: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.spectral = nn.Sequential(
            LinearNorm(in_dim, hidden),
            Mish(),
            nn.Dropout(dropout),
            LinearNorm(hidden, hidden),
            Mish(),
            nn.Dropout(dropout),
        )
        self.temporal = nn.Sequential(Conv1dGLU(hidden, kernel, dropout), Conv1dGLU(hidden, kernel, dropout))
        self.slf_attn = StyleSelfAttention(n_heads, hidden, dropout)
        self.fc = LinearNorm(hidden, out_dim)

    def forward(self, spec: Tensor, mask: Tensor | None = None) -> Tensor:
        """spec [B, in_dim, T], mask [B, 1, T] (1 = valid)."""
        pad = None if mask is None else (mask.int() == 0).squeeze(1)
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, pad))
        if pad is None:
            return x.mean(dim=1).unsqueeze(-1)
        x = x.masked_fill(pad.unsqueeze(-1), 0)
        return (x.sum(dim=1) / (~pad).sum(dim=1, keepdim=True)).unsqueeze(-1)

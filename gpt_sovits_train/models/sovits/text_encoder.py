"""Prior (text) encoder of the v2 generator: SSL content + phonemes fused by MRTE cross-attention.

Names (`enc_p.encoder_ssl`, `encoder_text`, `mrte`, `encoder2`, `proj`, ...) follow GPT-SoVITS v2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASK_FILL = -1e4  # v2 fills masked scores with -1e4 (not -inf); kept for numerical parity


def sequence_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """[B] lengths -> [B, T] boolean mask of valid positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] tensors (parameters named gamma/beta as in v2)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.shape = (channels,)  # a plain int tuple: a shape read off the input would not trace to ONNX
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.transpose(1, -1), self.shape, self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class RelativeMultiHeadAttention(nn.Module):
    """Multi-head attention over [B, C, T] with optional shared relative-position embeddings (window w)."""

    def __init__(
        self, channels: int, out_channels: int, n_heads: int, p_dropout: float = 0.0, window_size: int | None = None
    ) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        nn.init.xavier_uniform_(self.conv_q.weight)
        nn.init.xavier_uniform_(self.conv_k.weight)
        nn.init.xavier_uniform_(self.conv_v.weight)

    def forward(self, x: Tensor, context: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        q, k, v = self.conv_q(x), self.conv_k(context), self.conv_v(context)
        batch, channels, t_src = k.shape
        t_tgt = q.shape[2]
        q = q.view(batch, self.n_heads, self.k_channels, t_tgt).transpose(2, 3) / math.sqrt(self.k_channels)
        k = k.view(batch, self.n_heads, self.k_channels, t_src).transpose(2, 3)
        v = v.view(batch, self.n_heads, self.k_channels, t_src).transpose(2, 3)
        scores = q @ k.transpose(-2, -1)
        if self.window_size is not None:
            rel_k = self._relative_embeddings(self.emb_rel_k, t_src)
            scores = scores + self._rel_to_abs(q @ rel_k.unsqueeze(0).transpose(-2, -1))
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, MASK_FILL)
        weights = self.drop(torch.softmax(scores, dim=-1))
        out = weights @ v
        if self.window_size is not None:
            rel_v = self._relative_embeddings(self.emb_rel_v, t_src)
            out = out + self._abs_to_rel(weights) @ rel_v.unsqueeze(0)
        out = out.transpose(2, 3).contiguous().view(batch, channels, t_tgt)
        return self.conv_o(out)

    def _relative_embeddings(self, table: Tensor, length: int) -> Tensor:
        """Slice (or zero-pad) the [1, 2w+1, d] table to the 2*length-1 offsets a sequence needs."""
        window = self.window_size
        pad = max(length - (window + 1), 0)
        start = max((window + 1) - length, 0)
        if pad > 0:
            table = F.pad(table, [0, 0, pad, pad, 0, 0])
        return table[:, start : start + 2 * length - 1]

    @staticmethod
    def _rel_to_abs(x: Tensor) -> Tensor:
        """[B, H, L, 2L-1] relative logits -> [B, H, L, L] absolute, via the pad-and-reshape skew trick."""
        batch, heads, length, _ = x.shape
        x = F.pad(x, [0, 1])
        flat = F.pad(x.reshape(batch, heads, length * 2 * length), [0, length - 1])
        return flat.view(batch, heads, length + 1, 2 * length - 1)[:, :, :length, length - 1 :]

    @staticmethod
    def _abs_to_rel(x: Tensor) -> Tensor:
        """[B, H, L, L] attention weights -> [B, H, L, 2L-1] indexed by relative offset."""
        batch, heads, length, _ = x.shape
        x = F.pad(x, [0, length - 1])
        flat = F.pad(x.reshape(batch, heads, length**2 + length * (length - 1)), [length, 0])
        return flat.view(batch, heads, length, 2 * length)[:, :, :, 1:]


class ConvFeedForward(nn.Module):
    """Two 'same'-padded 1-D convs with ReLU, masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float) -> None:
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.drop(torch.relu(self.conv_1(F.pad(x * mask, self.pad))))
        return self.conv_2(F.pad(x * mask, self.pad)) * mask


class RelPosEncoder(nn.Module):
    """Post-norm transformer encoder over [B, C, T] with relative-position attention (window 4)."""

    def __init__(
        self,
        hidden: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        window_size: int = 4,
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList(
            RelativeMultiHeadAttention(hidden, hidden, n_heads, p_dropout, window_size) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            ConvFeedForward(hidden, filter_channels, kernel_size, p_dropout) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(n_layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, norm1, ffn, norm2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm1(x + self.drop(attn(x, x, attn_mask)))
            x = norm2(x + self.drop(ffn(x, mask)))
        return x * mask


class MRTE(nn.Module):
    """Content frames attend to phonemes; the global style vector is added in the 512-d hidden space."""

    def __init__(
        self, content_channels: int = 192, hidden: int = 512, out_channels: int = 192, n_heads: int = 4
    ) -> None:
        super().__init__()
        self.cross_attention = RelativeMultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, out_channels, 1)

    def forward(self, content: Tensor, content_mask: Tensor, text: Tensor, text_mask: Tensor, ge: Tensor) -> Tensor:
        attn_mask = text_mask.unsqueeze(2) * content_mask.unsqueeze(-1)
        content = self.c_pre(content * content_mask)
        text = self.text_pre(text * text_mask)
        x = self.cross_attention(content * content_mask, text * text_mask, attn_mask) + content + ge
        return self.c_post(x * content_mask)


class PriorEncoder(nn.Module):
    """`enc_p`: quantized SSL content + phonemes + style -> prior mean / log-std over inter channels."""

    def __init__(
        self,
        out_channels: int,
        hidden: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        n_symbols: int = 732,
        ssl_dim: int = 768,
    ) -> None:
        super().__init__()
        self.ssl_proj = nn.Conv1d(ssl_dim, hidden, 1)
        self.encoder_ssl = RelPosEncoder(hidden, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout)
        self.encoder_text = RelPosEncoder(hidden, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        self.text_embedding = nn.Embedding(n_symbols, hidden)
        self.mrte = MRTE(content_channels=hidden)
        self.encoder2 = RelPosEncoder(hidden, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

    def forward(
        self,
        content: Tensor,
        content_lengths: Tensor,
        text: Tensor,
        text_lengths: Tensor,
        ge: Tensor,
        speed: float = 1.0,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mask = sequence_mask(content_lengths, content.shape[2]).unsqueeze(1).to(content.dtype)
        y = self.encoder_ssl(self.ssl_proj(content * mask) * mask, mask)
        text_mask = sequence_mask(text_lengths, text.shape[1]).unsqueeze(1).to(y.dtype)
        t = self.encoder_text(self.text_embedding(text).transpose(1, 2) * text_mask, text_mask)
        y = self.encoder2(self.mrte(y, mask, t, text_mask, ge) * mask, mask)
        if speed != 1:
            # Speed changes the frame count of the prior; v2 interpolates linearly then re-derives the mask.
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            mask = F.interpolate(mask, size=y.shape[-1], mode="nearest")
        m, logs = torch.split(self.proj(y) * mask, self.proj.out_channels // 2, dim=1)
        return y, m, logs, mask

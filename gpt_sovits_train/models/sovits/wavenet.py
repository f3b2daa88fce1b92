"""WaveNet-style stacks used by the posterior encoder (`enc_q`) and the coupling flow (`flow`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import weight_norm

from gpt_sovits_train.models.sovits.text_encoder import sequence_mask


class WaveNet(nn.Module):
    """Gated dilated convs conditioned on the global style vector (legacy weight_norm -> weight_g/weight_v)."""

    def __init__(
        self,
        hidden: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden, self.n_layers = hidden, n_layers
        self.drop = nn.Dropout(p_dropout)
        self.cond_layer = weight_norm(nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(
                weight_norm(nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=dilation, padding=padding))
            )
            out = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(weight_norm(nn.Conv1d(hidden, out, 1)))

    def forward(self, x: Tensor, mask: Tensor, g: Tensor) -> Tensor:
        output = torch.zeros_like(x)
        cond = self.cond_layer(g)
        h = self.hidden
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers, strict=True)):
            act = in_layer(x) + cond[:, i * 2 * h : (i + 1) * 2 * h]
            act = self.drop(torch.tanh(act[:, :h]) * torch.sigmoid(act[:, h:]))
            rs = res_skip(act)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                output = output + rs[:, h:]
            else:
                output = output + rs
        return output * mask


class PosteriorEncoder(nn.Module):
    """`enc_q`: linear spectrogram -> posterior mean/log-std and a sample z (noise injectable for tests)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        self.pre = nn.Conv1d(in_channels, hidden, 1)
        self.enc = WaveNet(hidden, kernel_size, dilation_rate, n_layers, gin_channels)
        self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

    def forward(
        self, spec: Tensor, lengths: Tensor, g: Tensor, noise: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mask = sequence_mask(lengths, spec.shape[2]).unsqueeze(1).to(spec.dtype)
        # v2 detaches the style vector here: the style encoder learns through the prior, flow and decoder only
        # (without it the style encoder's gradient differs by a few percent from v2's at the first step)
        stats = self.proj(self.enc(self.pre(spec) * mask, mask, g.detach())) * mask
        m, logs = stats.chunk(2, dim=1)
        noise = torch.randn_like(m) if noise is None else noise
        return (m + noise * torch.exp(logs)) * mask, m, logs, mask


class MeanOnlyCoupling(nn.Module):
    """Affine coupling with unit scale: the second half is shifted by a WaveNet of the first half."""

    def __init__(
        self, channels: int, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int
    ) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WaveNet(hidden, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)
        # Zero init makes every coupling start as the identity, which keeps early training stable.
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(self, x: Tensor, mask: Tensor, g: Tensor, reverse: bool = False) -> Tensor:
        x0, x1 = x.split(self.half, dim=1)
        shift = self.post(self.enc(self.pre(x0) * mask, mask, g)) * mask
        x1 = (x1 - shift) * mask if reverse else shift + x1 * mask
        return torch.cat([x0, x1], dim=1)


class ChannelFlip(nn.Module):
    """Reverses channel order so the next coupling transforms the other half (no parameters)."""

    def forward(self, x: Tensor, mask: Tensor, g: Tensor, reverse: bool = False) -> Tensor:
        return torch.flip(x, [1])


class ResidualCouplingFlow(nn.Module):
    """`flow`: n_flows (coupling, flip) pairs; key indices 0, 2, 4, ... hold the couplings as in v2."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        kernel_size: int = 5,
        dilation_rate: int = 1,
        n_layers: int = 4,
        n_flows: int = 4,
        gin_channels: int = 512,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_flows):
            layers += [
                MeanOnlyCoupling(channels, hidden, kernel_size, dilation_rate, n_layers, gin_channels),
                ChannelFlip(),
            ]
        self.flows = nn.ModuleList(layers)

    def forward(self, x: Tensor, mask: Tensor, g: Tensor, reverse: bool = False) -> Tensor:
        for flow in reversed(self.flows) if reverse else self.flows:
            x = flow(x, mask, g, reverse=reverse)
        return x

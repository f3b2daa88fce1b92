"""HiFi-GAN generator (`dec`): latent frames -> 32 kHz waveform (640 samples per frame in v2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import weight_norm

LRELU_SLOPE = 0.1


def _same_padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Pairs of (dilated conv, plain conv) with leaky-ReLU and residual adds."""

    def __init__(self, channels: int, kernel: int, dilations: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_same_padding(kernel, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=_same_padding(kernel, 1))) for _ in dilations
        )
        for conv in [*self.convs1, *self.convs2]:
            nn.init.normal_(conv.weight_v, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """Transposed-conv upsampling with multi-receptive-field residual blocks, conditioned on the style vector.

    `post_channels` is 1 for the waveform head (v2); the iSTFT head reuses the same trunk with a wider output
    conv (see `istft.py`), so both decoders share one implementation of the upsampling stack.
    """

    def __init__(
        self,
        in_channels: int,
        resblock_kernel_sizes: list[int],
        resblock_dilation_sizes: list[list[int]],
        upsample_rates: list[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: list[int],
        gin_channels: int,
        post_channels: int = 1,
        post_bias: bool = False,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = upsample_initial_channel
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            channels = upsample_initial_channel // 2 ** (i + 1)
            up = weight_norm(nn.ConvTranspose1d(channels * 2, channels, kernel, rate, padding=(kernel - rate) // 2))
            nn.init.normal_(up.weight_v, 0.0, 0.01)
            self.ups.append(up)
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock1(channels, k, d))
        self.conv_post = nn.Conv1d(channels, post_channels, 7, padding=3, bias=post_bias)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def trunk(self, x: Tensor, g: Tensor) -> Tensor:
        """Latent [B, C, T] + style [B, gin, 1] -> output-conv activations [B, post_channels, T * prod(rates)]."""
        x = self.conv_pre(x) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        # v2 uses the default 0.01 slope here (not 0.1) before the output conv.
        return self.conv_post(F.leaky_relu(x))

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        return torch.tanh(self.trunk(x, g))

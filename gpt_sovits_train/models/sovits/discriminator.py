"""HiFi-GAN multi-period + scale discriminator with GPT-SoVITS v2 state-dict names (`discriminators.N.*`).

Convolutions use the legacy `torch.nn.utils.weight_norm`, which stores `weight_g`/`weight_v` exactly as the
official `s2D*.pth` files do, so pretrained discriminators load with no key mapping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm, weight_norm

LRELU_SLOPE = 0.1


def _norm(use_spectral_norm: bool):
    return spectral_norm if use_spectral_norm else weight_norm


def _channel_cap(max_channels: int):
    """Width limiter for small discriminators (tests, demos): v2's widths are powers of two up to 1024, so capping
    them at a power of two keeps every grouped convolution's groups dividing its channels."""
    if max_channels < 16 or max_channels & (max_channels - 1):
        raise ValueError(f"discriminator max_channels must be a power of two >= 16, got {max_channels}")
    return lambda channels: min(channels, max_channels)


class ScaleDiscriminator(nn.Module):
    """Raw-waveform discriminator (grouped strided 1-D convs). ``max_channels`` caps every width (v2: 1024)."""

    def __init__(self, use_spectral_norm: bool = False, max_channels: int = 1024) -> None:
        super().__init__()
        norm = _norm(use_spectral_norm)
        # (in, out, kernel, stride, groups); padding keeps "same"-style centring as in HiFi-GAN.
        layout = [
            (1, 16, 15, 1, 1),
            (16, 64, 41, 4, 4),
            (64, 256, 41, 4, 16),
            (256, 1024, 41, 4, 64),
            (1024, 1024, 41, 4, 256),
            (1024, 1024, 5, 1, 1),
        ]
        cap = _channel_cap(max_channels)
        layout = [(cap(i), cap(o), k, s, min(g, cap(i))) for i, o, k, s, g in layout]
        self.convs = nn.ModuleList(norm(nn.Conv1d(i, o, k, s, groups=g, padding=k // 2)) for i, o, k, s, g in layout)
        self.conv_post = norm(nn.Conv1d(layout[-1][1], 1, 3, 1, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into [T/period, period] and convolves along time, one period column at a time."""

    def __init__(
        self,
        period: int,
        kernel_size: int = 5,
        stride: int = 3,
        use_spectral_norm: bool = False,
        max_channels: int = 1024,
    ) -> None:
        super().__init__()
        self.period = period
        norm = _norm(use_spectral_norm)
        pad = ((kernel_size - 1) // 2, 0)
        cap = _channel_cap(max_channels)
        channels = [cap(c) for c in (1, 32, 128, 512, 1024)]
        convs = [
            norm(nn.Conv2d(channels[i], channels[i + 1], (kernel_size, 1), (stride, 1), padding=pad)) for i in range(4)
        ]
        convs.append(norm(nn.Conv2d(channels[-1], channels[-1], (kernel_size, 1), 1, padding=pad)))
        self.convs = nn.ModuleList(convs)
        self.conv_post = norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch, channels, length = x.shape
        if length % self.period:
            pad = self.period - length % self.period
            x = F.pad(x, (0, pad), "reflect")
            length += pad
        x = x.view(batch, channels, length // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """v2 discriminator: one scale discriminator followed by period discriminators (2, 3, 5, 7, 11).

    ``max_channels`` below v2's 1024 makes a small discriminator with the same structure: the v2 one is ~47 M
    parameters (~0.9 GB of checkpoint with its AdamW state), which dominates the time and disk of tiny-generator
    runs such as the demo and the tests.
    """

    def __init__(
        self,
        periods: tuple[int, ...] | list[int] = (2, 3, 5, 7, 11),
        use_spectral_norm: bool = False,
        max_channels: int = 1024,
    ) -> None:
        super().__init__()
        discs: list[nn.Module] = [ScaleDiscriminator(use_spectral_norm, max_channels)]
        discs += [
            PeriodDiscriminator(p, use_spectral_norm=use_spectral_norm, max_channels=max_channels) for p in periods
        ]
        self.discriminators = nn.ModuleList(discs)

    def score(self, wav: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        """Scores and feature maps of one batch of waveforms [B, 1, T], one entry per sub-discriminator.

        The generator step needs the real and the generated branch under different autograd rules (real: no
        graph at all, its feature maps are only targets; generated: a graph through the activations but not
        into the discriminator's own weights), so they are scored separately.
        """
        if wav.dim() != 3:
            raise ValueError(f"waveforms must be [B, 1, T]; got {tuple(wav.shape)}")
        scores, fmaps = [], []
        for disc in self.discriminators:
            score, fmap = disc(wav)
            scores.append(score)
            fmaps.append(fmap)
        return scores, fmaps

    def forward(
        self, real: Tensor, fake: Tensor
    ) -> tuple[list[Tensor], list[Tensor], list[list[Tensor]], list[list[Tensor]]]:
        """Scores and feature maps for real and generated waveforms [B, 1, T]."""
        if real.dim() != 3 or fake.dim() != 3:
            raise ValueError(f"waveforms must be [B, 1, T]; got {tuple(real.shape)} and {tuple(fake.shape)}")
        scores_real, scores_fake, fmaps_real, fmaps_fake = [], [], [], []
        for disc in self.discriminators:
            score, fmap = disc(real)
            scores_real.append(score)
            fmaps_real.append(fmap)
            score, fmap = disc(fake)
            scores_fake.append(score)
            fmaps_fake.append(fmap)
        return scores_real, scores_fake, fmaps_real, fmaps_fake

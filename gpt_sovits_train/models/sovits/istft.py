"""iSTFT decoder head (`dec` when `decoder="istft"`): a cheaper alternative to the full HiFi-GAN stack.

Why: most of HiFi-GAN's time goes into its last upsampling stages, which run at (or near) the audio rate. The
iSTFTNet idea stops the transposed-conv stack early (e.g. x8 x8 instead of x10 x8 x2 x2 x2), predicts the
log-magnitude and phase of a short STFT at that frame rate, and lets `torch.istft` do the remaining x`hop`
upsampling exactly. The output is the same 32 kHz wave with the same 640 samples per latent frame, so the rest
of the model, the losses and the discriminators are unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gpt_sovits_train.models.sovits.vocoder import HiFiGANGenerator

MAX_LOG_MAGNITUDE = math.log(100.0)  # keeps exp() finite early in training (|STFT| of a [-1, 1] wave is far below)


class ISTFTGenerator(HiFiGANGenerator):
    """HiFi-GAN trunk with fewer upsampling stages, then an (n_fft // 2 + 1)-bin magnitude/phase head and iSTFT."""

    def __init__(
        self,
        in_channels: int,
        resblock_kernel_sizes: list[int],
        resblock_dilation_sizes: list[list[int]],
        upsample_rates: list[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: list[int],
        gin_channels: int,
        n_fft: int = 40,
        hop: int = 10,
        samples_per_frame: int = 640,
    ) -> None:
        if math.prod(upsample_rates) * hop != samples_per_frame:
            raise ValueError(
                f"istft upsample rates {list(upsample_rates)} (product {math.prod(upsample_rates)}) times istft_hop "
                f"{hop} must equal {samples_per_frame} samples per latent frame"
            )
        if n_fft < hop:
            raise ValueError(f"istft_n_fft ({n_fft}) must be >= istft_hop ({hop}) so frames overlap-add to a signal")
        self.n_fft = n_fft
        self.hop = hop
        self.bins = n_fft // 2 + 1
        super().__init__(
            in_channels,
            resblock_kernel_sizes,
            resblock_dilation_sizes,
            upsample_rates,
            upsample_initial_channel,
            upsample_kernel_sizes,
            gin_channels,
            post_channels=2 * self.bins,
            post_bias=True,
        )
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """Latent [B, C, T] + style [B, gin, 1] -> wave [B, 1, T * prod(rates) * hop] in [-1, 1]-ish range."""
        # iSTFT needs float32 (complex bf16 does not exist); the trunk may run under autocast.
        stats = self.trunk(x, g).float()
        # With center=True, n frames give (n - 1) * hop samples; one replicated frame makes it exactly n * hop.
        stats = F.pad(stats, (0, 1), mode="replicate")
        log_mag, phase = stats.split(self.bins, dim=1)
        magnitude = torch.exp(log_mag.clamp(max=MAX_LOG_MAGNITUDE))
        # sin() keeps the phase bounded and periodic-friendly (as iSTFTNet does) instead of an unbounded angle.
        spectrum = torch.polar(magnitude, torch.sin(phase) * math.pi)
        with torch.autocast(device_type=x.device.type, enabled=False):
            wav = torch.istft(
                spectrum, self.n_fft, self.hop, self.n_fft, window=self.window.float(), center=True
            )
        return wav.unsqueeze(1)

"""The v2 SoVITS generator: semantic codes + phonemes + reference spectrogram -> 32 kHz waveform.

Sub-module names equal GPT-SoVITS v2's `SynthesizerTrn` (ssl_proj, quantizer, enc_p, enc_q, flow, dec, ref_enc),
and weight-normed convs use the legacy `torch.nn.utils.weight_norm`, so official `s2G*.pth` weights load
with `load_state_dict` unchanged (no key mapping). Randomness in training (posterior noise, slice start)
can be injected so runs are reproducible against the reference fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpt_sovits_train.models.sovits.quantizer import ResidualVectorQuantizer
from gpt_sovits_train.models.sovits.style_encoder import MelStyleEncoder
from gpt_sovits_train.models.sovits.text_encoder import PriorEncoder, sequence_mask
from gpt_sovits_train.models.sovits.vocoder import HiFiGANGenerator
from gpt_sovits_train.models.sovits.wavenet import PosteriorEncoder, ResidualCouplingFlow

STYLE_BINS = 704  # v2's style encoder reads only the first 704 of the 1025 linear-spectrogram bins


@dataclass
class GeneratorOutput:
    """Everything the training step needs from one generator forward."""

    y_hat: Tensor  # generated waveform of the sliced segment [B, 1, segment_frames * hop]
    commit_loss: Tensor
    ids_slice: Tensor  # start frame of each slice [B]
    y_mask: Tensor  # [B, 1, T]
    z: Tensor
    z_p: Tensor
    m_p: Tensor
    logs_p: Tensor
    m_q: Tensor
    logs_q: Tensor
    quantized: Tensor


def slice_segments(x: Tensor, starts: Tensor, size: int) -> Tensor:
    """Cut x[b, :, starts[b] : starts[b] + size] for each batch row."""
    return torch.stack([x[i, :, int(s) : int(s) + size] for i, s in enumerate(starts)])


def match_frames(content: Tensor, frames: int) -> Tensor:
    """Bring 50 Hz content (upsampled 25 Hz codes) to exactly ``frames`` spectrogram frames.

    A clip with an odd number of SSL frames loses one frame to the stride-2 projection, so the upsampled
    content can be one frame short of the spectrogram (v2 pads SSL by replication in its data loader for the
    same reason); repeat the last frame, or trim when the content is longer.
    """
    missing = frames - content.shape[-1]
    if missing > 0:
        content = F.pad(content, (0, missing), mode="replicate")
    return content[..., :frames]


class SoVITSGenerator(nn.Module):
    """v2 generator; constructor arguments follow the `model` section of the v2 s2 config."""

    def __init__(
        self,
        spec_channels: int = 1025,
        segment_size: int = 32,
        inter_channels: int = 192,
        hidden_channels: int = 192,
        filter_channels: int = 768,
        n_heads: int = 2,
        n_layers: int = 6,
        kernel_size: int = 3,
        p_dropout: float = 0.1,
        resblock_kernel_sizes: list[int] = (3, 7, 11),
        resblock_dilation_sizes: list[list[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        upsample_rates: list[int] = (10, 8, 2, 2, 2),
        upsample_initial_channel: int = 512,
        upsample_kernel_sizes: list[int] = (16, 16, 8, 2, 2),
        gin_channels: int = 512,
        n_symbols: int = 732,
        ssl_dim: int = 768,
        codebook_size: int = 1024,
        n_q: int = 1,
        freeze_quantizer: bool = True,
        posterior_layers: int = 16,
        flow_layers: int = 4,
        n_flows: int = 4,
    ) -> None:
        super().__init__()
        if spec_channels < STYLE_BINS:
            raise ValueError(f"spec_channels must be >= {STYLE_BINS} (v2 style encoder input); use filter_length 2048")
        if hidden_channels != 192 or gin_channels != 512:
            raise ValueError("v2's MRTE fixes hidden_channels=192 and gin_channels=512; keep those values")
        self.segment_size = segment_size
        self.freeze_quantizer = freeze_quantizer
        self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, 2, stride=2)
        self.quantizer = ResidualVectorQuantizer(ssl_dim, n_q, codebook_size)
        self.enc_p = PriorEncoder(
            inter_channels,
            hidden_channels,
            filter_channels,
            n_heads,
            n_layers,
            kernel_size,
            p_dropout,
            n_symbols,
            ssl_dim,
        )
        self.dec = HiFiGANGenerator(
            inter_channels,
            list(resblock_kernel_sizes),
            [list(d) for d in resblock_dilation_sizes],
            list(upsample_rates),
            upsample_initial_channel,
            list(upsample_kernel_sizes),
            gin_channels,
        )
        self.enc_q = PosteriorEncoder(
            spec_channels, inter_channels, hidden_channels, 5, 1, posterior_layers, gin_channels
        )
        self.flow = ResidualCouplingFlow(inter_channels, hidden_channels, 5, 1, flow_layers, n_flows, gin_channels)
        self.ref_enc = MelStyleEncoder(STYLE_BINS, out_dim=gin_channels)

    # --- semantic tokens -------------------------------------------------------------------------------
    def _quantize(self, ssl: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.freeze_quantizer:
            # v2 runs the frozen tokenizer in eval mode without grad, which is why its commit loss is always 0.
            was_training = self.ssl_proj.training
            self.ssl_proj.eval()
            self.quantizer.eval()
            with torch.no_grad():
                quantized, codes, commit = self.quantizer(self.ssl_proj(ssl))
            self.ssl_proj.train(was_training)
            self.quantizer.train(was_training)
            return quantized, codes, commit
        return self.quantizer(self.ssl_proj(ssl))

    def extract_latent(self, ssl: Tensor) -> Tensor:
        """SSL features [B, 768, T] (50 Hz) -> semantic codes [B, 1, T//2] (25 Hz)."""
        if ssl.dim() != 3 or ssl.shape[1] != self.ssl_proj.in_channels:
            raise ValueError(f"ssl must be [B, {self.ssl_proj.in_channels}, T], got shape {tuple(ssl.shape)}")
        _, codes, _ = self.quantizer(self.ssl_proj(ssl))
        return codes.transpose(0, 1)

    def style(self, spec: Tensor, mask: Tensor) -> Tensor:
        """Global style vector ge [B, gin, 1] from the first 704 bins of a linear spectrogram."""
        return self.ref_enc(spec[:, :STYLE_BINS] * mask, mask)

    # --- training -------------------------------------------------------------------------------------
    def forward(
        self,
        ssl: Tensor,
        spec: Tensor,
        spec_lengths: Tensor,
        text: Tensor,
        text_lengths: Tensor,
        posterior_noise: Tensor | None = None,
        slice_uniform: Tensor | None = None,
    ) -> GeneratorOutput:
        """Training forward; `posterior_noise` ([B, inter, T]) and `slice_uniform` ([B] in [0,1)) make it exact."""
        y_mask = sequence_mask(spec_lengths, spec.shape[2]).unsqueeze(1).to(spec.dtype)
        ge = self.style(spec, y_mask)
        quantized, _, commit = self._quantize(ssl)
        quantized = match_frames(F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest"), spec.shape[2])
        _, m_p, logs_p, y_mask = self.enc_p(quantized, spec_lengths, text, text_lengths, ge)
        z, m_q, logs_q, y_mask = self.enc_q(spec, spec_lengths, ge, noise=posterior_noise)
        z_p = self.flow(z, y_mask, ge)
        if slice_uniform is None:
            slice_uniform = torch.rand(z.shape[0], device=z.device)
        max_start = spec_lengths - self.segment_size + 1
        if bool((max_start < 1).any()):
            raise ValueError(
                f"every utterance must have >= segment_size ({self.segment_size}) frames; "
                f"got lengths {spec_lengths.tolist()} (drop short clips or lower segment_size)"
            )
        ids_slice = (slice_uniform.to(z.device) * max_start).long()
        y_hat = self.dec(slice_segments(z, ids_slice, self.segment_size), ge)
        return GeneratorOutput(y_hat, commit, ids_slice, y_mask, z, z_p, m_p, logs_p, m_q, logs_q, quantized)

    # --- inference ------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self,
        codes: Tensor,
        text: Tensor,
        refer_spec: Tensor | list[Tensor],
        noise_scale: float = 0.5,
        speed: float = 1.0,
    ) -> Tensor:
        """Semantic codes [B, n_q, T] + phoneme ids [B, L] + reference spectrogram(s) -> wav [B, 1, 2*T*hop].

        Several reference spectrograms (a list) are averaged into one style vector.
        """
        return self.decode_with_intermediates(codes, text, refer_spec, noise_scale, speed)["wav"]

    @torch.no_grad()
    def decode_with_intermediates(
        self,
        codes: Tensor,
        text: Tensor,
        refer_spec: Tensor | list[Tensor],
        noise_scale: float = 0.5,
        speed: float = 1.0,
    ) -> dict[str, Tensor]:
        refs = [refer_spec] if isinstance(refer_spec, Tensor) else list(refer_spec)
        styles = []
        for ref in refs:
            mask = torch.ones(ref.shape[0], 1, ref.shape[2], dtype=ref.dtype, device=ref.device)
            styles.append(self.style(ref, mask))
        ge = torch.stack(styles).mean(0)
        quantized = self.quantizer.decode(codes.transpose(0, 1))
        quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        lengths = torch.full((codes.shape[0],), quantized.shape[-1], dtype=torch.long, device=codes.device)
        text_lengths = torch.full((text.shape[0],), text.shape[-1], dtype=torch.long, device=text.device)
        _, m_p, logs_p, y_mask = self.enc_p(quantized, lengths, text, text_lengths, ge, speed)
        z_p = m_p + torch.randn_like(m_p) * torch.exp(logs_p) * noise_scale
        z = self.flow(z_p, y_mask, ge, reverse=True)
        wav = self.dec(z * y_mask, ge)
        return {"wav": wav, "ge": ge, "m_p": m_p, "logs_p": logs_p, "z": z}

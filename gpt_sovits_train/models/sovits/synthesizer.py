"""The v2 SoVITS generator: semantic codes + phonemes + reference spectrogram -> 32 kHz waveform.

Sub-module names equal GPT-SoVITS v2's `SynthesizerTrn` (ssl_proj, quantizer, enc_p, enc_q, flow, dec, ref_enc),
and weight-normed convs use the legacy `torch.nn.utils.weight_norm`, so official `s2G*.pth` weights load
with `load_state_dict` unchanged (no key mapping). Randomness in training (posterior noise, slice start)
can be injected so runs are reproducible against the reference fixtures.

Options beyond v2 (all off by default, so the default build stays state-dict-identical to v2):
`speaker_dim` (ECAPA speaker embedding added to the global condition, sub-module `spk_proj`), `decoder="istft"`
(cheaper iSTFT head as `dec`), `content_source="encodec"` (EnCodec codes through `content_emb` instead of
`ssl_proj` + `quantizer`) and `gradient_checkpointing` (recompute the heavy sub-modules in backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gpt_sovits_train.models.sovits.conditioning import add_speaker, speaker_projection
from gpt_sovits_train.models.sovits.content import check_content_source, codec_codes
from gpt_sovits_train.models.sovits.istft import ISTFTGenerator
from gpt_sovits_train.models.sovits.quantizer import ResidualVectorQuantizer
from gpt_sovits_train.models.sovits.style_encoder import MelStyleEncoder
from gpt_sovits_train.models.sovits.text_encoder import PriorEncoder, sequence_mask
from gpt_sovits_train.models.sovits.vocoder import HiFiGANGenerator
from gpt_sovits_train.models.sovits.wavenet import PosteriorEncoder, ResidualCouplingFlow

STYLE_BINS = 704  # v2's style encoder reads only the first 704 of the 1025 linear-spectrogram bins
DECODERS = ("hifigan", "istft")


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
        speaker_dim: int = 0,
        decoder: str = "hifigan",
        istft_upsample_rates: list[int] = (8, 8),
        istft_upsample_kernel_sizes: list[int] = (16, 16),
        istft_n_fft: int = 40,
        istft_hop: int = 10,
        content_source: str = "ssl",
        codec_codebook_size: int = 1024,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if spec_channels < STYLE_BINS:
            raise ValueError(f"spec_channels must be >= {STYLE_BINS} (v2 style encoder input); use filter_length 2048")
        if hidden_channels != 192 or gin_channels != 512:
            raise ValueError("v2's MRTE fixes hidden_channels=192 and gin_channels=512; keep those values")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if speaker_dim < 0:
            raise ValueError(f"speaker_dim must be >= 0 (0 = no speaker conditioning), got {speaker_dim}")
        self.segment_size = segment_size
        self.content_source = check_content_source(content_source)
        self.speaker_dim = speaker_dim
        self.decoder = decoder
        self.gradient_checkpointing = gradient_checkpointing
        self.ssl_dim = ssl_dim
        self.codec_codebook_size = codec_codebook_size
        self.samples_per_frame = math.prod(upsample_rates)  # hop of the latent frames (640 in v2)
        # Only the SSL path has a tokenizer to freeze; encodec mode reports False so callers that freeze
        # `ssl_proj` / `quantizer` when this flag is set have nothing to look for.
        self.freeze_quantizer = freeze_quantizer and content_source == "ssl"
        if content_source == "ssl":
            self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, 2, stride=2)
            self.quantizer = ResidualVectorQuantizer(ssl_dim, n_q, codebook_size)
        else:
            # EnCodec codes arrive already tokenised at 25 Hz: one table gives the 768-d content the prior reads.
            self.content_emb = nn.Embedding(codec_codebook_size, ssl_dim)
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
        if decoder == "hifigan":
            self.dec: nn.Module = HiFiGANGenerator(
                inter_channels,
                list(resblock_kernel_sizes),
                [list(d) for d in resblock_dilation_sizes],
                list(upsample_rates),
                upsample_initial_channel,
                list(upsample_kernel_sizes),
                gin_channels,
            )
        else:
            self.dec = ISTFTGenerator(
                inter_channels,
                list(resblock_kernel_sizes),
                [list(d) for d in resblock_dilation_sizes],
                list(istft_upsample_rates),
                upsample_initial_channel,
                list(istft_upsample_kernel_sizes),
                gin_channels,
                n_fft=istft_n_fft,
                hop=istft_hop,
                samples_per_frame=self.samples_per_frame,
            )
        self.enc_q = PosteriorEncoder(
            spec_channels, inter_channels, hidden_channels, 5, 1, posterior_layers, gin_channels
        )
        self.flow = ResidualCouplingFlow(inter_channels, hidden_channels, 5, 1, flow_layers, n_flows, gin_channels)
        self.ref_enc = MelStyleEncoder(STYLE_BINS, out_dim=gin_channels)
        self.spk_proj = speaker_projection(speaker_dim, gin_channels) if speaker_dim > 0 else None

    def keys_not_in_v2(self) -> list[str]:
        """State-dict keys that an official v2 s2G file cannot provide for this configuration.

        With only `speaker_dim > 0` these are `spk_proj.weight` and `spk_proj.bias` (zero-initialised, so the
        loaded model behaves as v2 until trained). The iSTFT head and EnCodec content change `dec.*` /
        replace `ssl_proj.*` + `quantizer.*`, so v2 weights fit those configurations only in part.
        """
        fresh = ("spk_proj.", "content_emb.") + (("dec.",) if self.decoder != "hifigan" else ())
        return [k for k in self.state_dict() if k.startswith(fresh)]

    def _run(self, module: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a heavy sub-module, through activation checkpointing when enabled and gradients are recorded.

        Non-reentrant checkpointing restores the RNG state on recomputation, so dropout and the posterior
        noise are the same in both passes and outputs / gradients equal the plain call's.
        """
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False, **kwargs)
        return module(*args, **kwargs)

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

    def _content(self, content: Tensor) -> tuple[Tensor, Tensor]:
        """Training content -> (25 Hz content features [B, 768, T25], commit loss)."""
        if self.content_source == "encodec":
            features = self.content_emb(codec_codes(content, self.codec_codebook_size)).transpose(1, 2)
            return features, torch.zeros((), device=features.device, dtype=features.dtype)
        self._check_ssl(content)
        quantized, _, commit = self._quantize(content)
        return quantized, commit

    def _check_ssl(self, ssl: Tensor) -> None:
        if not ssl.is_floating_point() or ssl.dim() != 3 or ssl.shape[1] != self.ssl_proj.in_channels:
            raise ValueError(
                f"ssl must be float [B, {self.ssl_proj.in_channels}, T], got {ssl.dtype} of shape {tuple(ssl.shape)}"
                " (EnCodec codes go to a content_source='encodec' generator)"
            )

    def extract_latent(self, content: Tensor) -> Tensor:
        """Content -> codes [B, 1, T25]: SSL features [B, 768, T50] are quantized; EnCodec codes are checked."""
        if self.content_source == "encodec":
            return codec_codes(content, self.codec_codebook_size).unsqueeze(1)
        self._check_ssl(content)
        _, codes, _ = self.quantizer(self.ssl_proj(content))
        return codes.transpose(0, 1)

    def codes_to_content(self, codes: Tensor) -> Tensor:
        """Codes [B, n_q, T25] -> 25 Hz content features [B, 768, T25] (VQ codebook or EnCodec embedding)."""
        if self.content_source == "encodec":
            return self.content_emb(codec_codes(codes, self.codec_codebook_size)).transpose(1, 2)
        return self.quantizer.decode(codes.transpose(0, 1))

    def style(self, spec: Tensor, mask: Tensor) -> Tensor:
        """Global style vector ge [B, gin, 1] from the first 704 bins of a linear spectrogram."""
        return self.ref_enc(spec[:, :STYLE_BINS] * mask, mask)

    # --- training -------------------------------------------------------------------------------------
    def forward(
        self,
        content: Tensor,
        spec: Tensor,
        spec_lengths: Tensor,
        text: Tensor,
        text_lengths: Tensor,
        posterior_noise: Tensor | None = None,
        slice_uniform: Tensor | None = None,
        speaker_embedding: Tensor | None = None,
    ) -> GeneratorOutput:
        """Training forward; `posterior_noise` ([B, inter, T]) and `slice_uniform` ([B] in [0,1)) make it exact.

        `content` is SSL features [B, 768, T50] (content_source "ssl") or EnCodec codes [B, T25] / [B, 1, T25]
        (content_source "encodec"); `speaker_embedding` [B, speaker_dim] is required iff speaker_dim > 0.
        """
        y_mask = sequence_mask(spec_lengths, spec.shape[2]).unsqueeze(1).to(spec.dtype)
        ge = add_speaker(self.style(spec, y_mask), self.spk_proj, speaker_embedding)
        quantized, commit = self._content(content)
        quantized = match_frames(F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest"), spec.shape[2])
        _, m_p, logs_p, y_mask = self._run(self.enc_p, quantized, spec_lengths, text, text_lengths, ge)
        z, m_q, logs_q, y_mask = self._run(self.enc_q, spec, spec_lengths, ge, noise=posterior_noise)
        z_p = self._run(self.flow, z, y_mask, ge)
        if slice_uniform is None:
            slice_uniform = torch.rand(z.shape[0], device=z.device)
        max_start = spec_lengths - self.segment_size + 1
        if bool((max_start < 1).any()):
            raise ValueError(
                f"every utterance must have >= segment_size ({self.segment_size}) frames; "
                f"got lengths {spec_lengths.tolist()} (drop short clips or lower segment_size)"
            )
        ids_slice = (slice_uniform.to(z.device) * max_start).long()
        y_hat = self._run(self.dec, slice_segments(z, ids_slice, self.segment_size), ge)
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
        speaker_embedding: Tensor | None = None,
    ) -> Tensor:
        """Semantic codes [B, n_q, T] + phoneme ids [B, L] + reference spectrogram(s) -> wav [B, 1, 2*T*hop].

        Several reference spectrograms (a list) are averaged into one style vector. In encodec mode `codes`
        are EnCodec codes [B, 1, T25]; `speaker_embedding` [B, speaker_dim] is required iff speaker_dim > 0.
        """
        return self.decode_with_intermediates(codes, text, refer_spec, noise_scale, speed, speaker_embedding)["wav"]

    @torch.no_grad()
    def decode_with_intermediates(
        self,
        codes: Tensor,
        text: Tensor,
        refer_spec: Tensor | list[Tensor],
        noise_scale: float = 0.5,
        speed: float = 1.0,
        speaker_embedding: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """`decode` that also returns the style vector, prior statistics and latent (for parity checks)."""
        refs = [refer_spec] if isinstance(refer_spec, Tensor) else list(refer_spec)
        styles = []
        for ref in refs:
            mask = torch.ones(ref.shape[0], 1, ref.shape[2], dtype=ref.dtype, device=ref.device)
            styles.append(self.style(ref, mask))
        ge = add_speaker(torch.stack(styles).mean(0), self.spk_proj, speaker_embedding)
        quantized = self.codes_to_content(codes)
        quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        lengths = torch.full((codes.shape[0],), quantized.shape[-1], dtype=torch.long, device=codes.device)
        text_lengths = torch.full((text.shape[0],), text.shape[-1], dtype=torch.long, device=text.device)
        _, m_p, logs_p, y_mask = self.enc_p(quantized, lengths, text, text_lengths, ge, speed)
        z_p = m_p + torch.randn_like(m_p) * torch.exp(logs_p) * noise_scale
        z = self.flow(z_p, y_mask, ge, reverse=True)
        wav = self.dec(z * y_mask, ge)
        return {"wav": wav, "ge": ge, "m_p": m_p, "logs_p": logs_p, "z": z}

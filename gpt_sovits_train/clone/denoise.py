"""Optional denoising of the raw recording before slicing.

Home recordings carry fan hum and room noise that SoVITS would faithfully learn as part of
the voice. Two denoisers share one call signature ``denoiser(wav, sample_rate) -> wav``:

* ``SpectralGateDenoiser`` (default when denoising is on): estimates a per-frequency noise
  floor from the quietest frames and attenuates time-frequency cells that do not rise above
  it. No weights, deterministic, mild by design (``reduction`` < 1) to avoid musical noise.
* ``SpeechBrainDenoiser``: a speechbrain spectral-mask enhancement model (e.g.
  ``speechbrain/metricgan-plus-voicebank``) loaded from a local folder or hub id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gpt_sovits_train.audio.io import resample


class SpectralGateDenoiser:
    """Spectral gating with a noise profile from the quietest ``noise_percentile`` % of frames."""

    def __init__(
        self,
        n_fft: int = 1024,
        hop_length: int = 256,
        noise_percentile: float = 10.0,
        n_std: float = 1.5,
        reduction: float = 0.9,
        dilate_freq_bins: int = 5,
        smooth_frames: int = 5,
    ) -> None:
        if not 0.0 <= reduction <= 1.0:
            raise ValueError(f"reduction is the share of noise removed, between 0 and 1; got {reduction}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.noise_percentile = noise_percentile
        self.n_std = n_std
        self.reduction = reduction
        self.dilate_freq_bins = dilate_freq_bins
        self.smooth_frames = smooth_frames

    @torch.no_grad()
    def __call__(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        audio = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        if audio.numel() < self.n_fft:
            return np.asarray(wav, dtype=np.float32)
        window = torch.hann_window(self.n_fft)
        spec = torch.stft(audio, self.n_fft, self.hop_length, window=window, return_complex=True)  # [F, T]
        db = 20 * torch.log10(spec.abs().clamp_min(1e-8))

        frame_energy = db.mean(dim=0)
        quiet = frame_energy <= torch.quantile(frame_energy, self.noise_percentile / 100)
        noise_db = db[:, quiet]
        threshold = noise_db.mean(dim=1, keepdim=True) + self.n_std * noise_db.std(dim=1, keepdim=True).nan_to_num(0)

        keep = (db > threshold).float()[None, None]  # [1, 1, F, T]
        # Widen kept cells across neighbouring bins first (a windowed harmonic spreads over
        # ~2 bins either side), then soften the mask over time so gains do not flicker.
        keep = F.max_pool2d(keep, (self.dilate_freq_bins, 1), stride=1, padding=(self.dilate_freq_bins // 2, 0))
        kernel = torch.full((1, 1, 1, self.smooth_frames), 1.0 / self.smooth_frames)
        keep = F.conv2d(F.pad(keep, (self.smooth_frames // 2,) * 2 + (0, 0), mode="replicate"), kernel)[0, 0]
        gain = 1.0 - self.reduction * (1.0 - keep)

        out = torch.istft(spec * gain, self.n_fft, self.hop_length, window=window, length=audio.numel())
        return out.numpy().astype(np.float32)


class SpeechBrainDenoiser:
    """A speechbrain ``SpectralMaskEnhancement`` model; runs at the model's rate, returns the input rate."""

    def __init__(self, source: str, model_rate: int = 16000, device: str = "cpu", savedir: str | None = None) -> None:
        from speechbrain.inference.enhancement import SpectralMaskEnhancement

        local = Path(source)
        self.model = SpectralMaskEnhancement.from_hparams(
            source=str(local) if local.exists() else source,
            savedir=savedir or (str(local) if local.is_dir() else None),
            run_opts={"device": device},
        )
        if self.model is None:
            raise FileNotFoundError(
                f"could not load a speechbrain enhancement model from {source!r}: pass a folder holding its "
                "hyperparams.yaml and checkpoints (e.g. a local copy of speechbrain/metricgan-plus-voicebank)"
            )
        self.model_rate = model_rate
        self.device = device

    @torch.no_grad()
    def __call__(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        audio = resample(wav, sample_rate, self.model_rate)[None].to(self.device)
        enhanced = self.model.enhance_batch(audio, lengths=torch.ones(1, device=self.device))
        return resample(enhanced[0].cpu(), self.model_rate, sample_rate).numpy()

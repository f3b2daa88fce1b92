"""Semantic tokens → audio with a fixed reference voice: how GPT-stage validation makes its samples audible."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gpt_sovits_train.audio.io import load_mono
from gpt_sovits_train.audio.spectrogram import linear_spectrogram
from gpt_sovits_train.constants import SAMPLE_RATE
from gpt_sovits_train.inference.loading import build_network


class ReferenceVocoder:
    """A SoVITS checkpoint (ours or official v2) plus one reference clip for the voice.

    ``vocoder(codes [T], phone_ids [P]) -> wav [N]`` at 32 kHz. The network is loaded on first use, so building
    the training config stays cheap and a missing file is reported when validation first needs it.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        reference_audio: str | Path,
        net: Mapping[str, Any] | torch.nn.Module | None = None,
        noise_scale: float = 0.5,
    ) -> None:
        self.checkpoint, self.reference_audio, self.net_cfg = Path(checkpoint), Path(reference_audio), net
        self.noise_scale = noise_scale
        self._network: torch.nn.Module | None = None
        self._refer_spec: torch.Tensor | None = None

    def _load(self, device: torch.device) -> None:
        for path in (self.checkpoint, self.reference_audio):
            if not path.is_file():
                raise FileNotFoundError(f"validation vocoder: {path} does not exist (model.validation_vocoder.*)")
        self._network = build_network(self.net_cfg, self.checkpoint, "sovits").to(device).eval()
        wav = load_mono(self.reference_audio, SAMPLE_RATE).to(device)
        self._refer_spec = linear_spectrogram(wav.unsqueeze(0))

    @torch.no_grad()
    def __call__(self, codes: torch.Tensor, phone_ids: torch.Tensor) -> torch.Tensor:
        device = codes.device
        if self._network is None:
            self._load(device)
        assert self._network is not None and self._refer_spec is not None
        wav = self._network.decode(
            codes.long().view(1, 1, -1), phone_ids.long().view(1, -1), self._refer_spec, noise_scale=self.noise_scale
        )
        return wav.reshape(-1).float()

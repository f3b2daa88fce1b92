"""HuBERT content features (the SSL features v2's SoVITS stage and semantic tokens are built on).

v2 feeds 16 kHz audio through ``Wav2Vec2FeatureExtractor`` (zero-mean/unit-variance when the model folder's
preprocessor config says so) and takes ``last_hidden_state``: 768 channels at 50 Hz (one frame per 320 input
samples) for chinese-hubert-base.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import HubertModel, Wav2Vec2FeatureExtractor

from gpt_sovits_train.constants import SSL_SAMPLE_RATE
from gpt_sovits_train.features.hub import pick_device, resolve_model_dir

SSL_HOP = 320


class HubertExtractor:
    """``__call__(wav16k [N]) -> float32 [hidden, frames]`` with ``frames = N // 320`` for whole hops."""

    version = "hubert-last_hidden_state-v1"

    def __init__(self, model: str | Path, device: str | None = "auto", dtype: str = "float32") -> None:
        folder = resolve_model_dir(model)
        self.name = str(model)
        self.device = pick_device(device)
        self.dtype = getattr(torch, dtype)
        self.model = HubertModel.from_pretrained(folder).to(self.device, self.dtype).eval()
        has_preprocessor = (folder / "preprocessor_config.json").is_file()
        # Without a preprocessor config the raw waveform goes in as is, which is what the model then expects.
        self.processor = Wav2Vec2FeatureExtractor.from_pretrained(folder) if has_preprocessor else None

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def __call__(self, wav16k: torch.Tensor) -> torch.Tensor:
        wav = wav16k.detach().float().cpu().reshape(-1)
        if self.processor is not None:
            values = self.processor(wav.numpy(), sampling_rate=SSL_SAMPLE_RATE, return_tensors="pt").input_values
        else:
            values = wav.unsqueeze(0)
        hidden = self.model(values.to(self.device, self.dtype)).last_hidden_state  # [1, frames, hidden]
        return hidden[0].transpose(0, 1).float().cpu()

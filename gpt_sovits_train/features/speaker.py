"""Speaker embeddings with speechbrain's ECAPA-TDNN (192-d, as in spkrec-ecapa-voxceleb).

The model folder holds ``embedding_model.ckpt`` (the ECAPA state dict) and, optionally,
``ecapa_config.json`` with constructor arguments (defaults match spkrec-ecapa-voxceleb). Inputs are
80-bin fbank features of 16 kHz audio with sentence-level mean normalisation, as that recipe trains them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from gpt_sovits_train.features.hub import pick_device, resolve_model_dir

DEFAULT_ECAPA_CONFIG = {
    "input_size": 80,
    "channels": [1024, 1024, 1024, 1024, 3072],
    "kernel_sizes": [5, 3, 3, 3, 1],
    "dilations": [1, 2, 3, 4, 1],
    "attention_channels": 128,
    "lin_neurons": 192,
}
CHECKPOINT_NAME = "embedding_model.ckpt"
CONFIG_NAME = "ecapa_config.json"


def build_ecapa(config: dict | None = None) -> ECAPA_TDNN:
    return ECAPA_TDNN(**{**DEFAULT_ECAPA_CONFIG, **(config or {})})


class EcapaSpeakerEncoder:
    """``__call__(wav16k [N]) -> float32 [lin_neurons]`` speaker embedding."""

    version = "ecapa-tdnn-fbank80-v1"

    def __init__(self, model: str | Path, device: str | None = "auto") -> None:
        folder = resolve_model_dir(model)
        self.name = str(model)
        self.device = pick_device(device)
        config_path = folder / CONFIG_NAME
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        self.model = build_ecapa(config)
        state = torch.load(folder / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()
        self.fbank = Fbank(n_mels=int(self.model.blocks[0].conv.conv.in_channels)).to(self.device)

    @torch.inference_mode()
    def __call__(self, wav16k: torch.Tensor) -> torch.Tensor:
        wav = wav16k.detach().float().reshape(1, -1).to(self.device)
        features = self.fbank(wav)
        features = features - features.mean(dim=1, keepdim=True)
        return self.model(features).reshape(-1).float().cpu()

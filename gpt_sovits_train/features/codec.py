"""Optional EnCodec codec tokens (``encodec`` package), e.g. for codec-token experiments.

The model folder holds ``encodec_config.json`` (``{"sample_rate": 24000, "bandwidth": 6.0}``) and
``encodec_state.pt`` (a state dict of ``encodec.EncodecModel.encodec_model_24khz``/``_48khz``); with real
weights export them once with ``torch.save(model.state_dict(), ...)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gpt_sovits_train.audio.io import resample
from gpt_sovits_train.constants import SEMANTIC_HZ
from gpt_sovits_train.features.hub import pick_device, resolve_model_dir

if TYPE_CHECKING:  # the encodec package is imported only where a model is built, not by collate/inference
    from encodec import EncodecModel

CONFIG_NAME = "encodec_config.json"
STATE_NAME = "encodec_state.pt"
CODEC_FRAME_RATE = 75  # the 24 kHz EnCodec model: one code frame per 320 samples
CONTENT_STRIDE = CODEC_FRAME_RATE // SEMANTIC_HZ  # to the SoVITS content rate


def codec_content_tokens(codes: torch.Tensor) -> torch.Tensor:
    """EnCodec codes ``[n_q, T75]`` (or ``[T75]``) → SoVITS content tokens ``[ceil(T75 / 3)]`` at 25 Hz.

    Only codebook 0 is kept: it carries most of the content and is one token per frame, like v2's semantic
    tokens, so the GPT stage can model it with the same 1024-entry vocabulary. 75 Hz → 25 Hz keeps the *middle*
    frame of each group of three (frames 1, 4, 7, ...): of the three it is the one centred on the 40 ms window
    the 25 Hz frame stands for, and picking (rather than averaging) keeps a real codebook entry. A trailing group
    of one frame uses its own (last) frame, so the length is ``ceil(T75 / 3)`` — ``2 * T25`` then matches the
    32 kHz spectrogram frame count within the generator's one-frame tolerance. Training (collate) and inference
    both call this, so the rule cannot drift between them.
    """
    first = codes if codes.dim() == 1 else codes[0]
    if first.dim() != 1:
        raise ValueError(f"expected EnCodec codes [n_q, T] or [T], got shape {tuple(codes.shape)}")
    frames = first.shape[-1]
    groups = -(-frames // CONTENT_STRIDE)
    index = (torch.arange(groups, device=first.device) * CONTENT_STRIDE + CONTENT_STRIDE // 2).clamp(max=frames - 1)
    return first.long()[index]


def build_encodec(sample_rate: int = 24000) -> EncodecModel:
    """An EnCodec model of the given rate with random weights (weights come from our own state file)."""
    from encodec import EncodecModel

    builders = {24000: EncodecModel.encodec_model_24khz, 48000: EncodecModel.encodec_model_48khz}
    if sample_rate not in builders:
        raise ValueError(f"EnCodec exists for 24000 or 48000 Hz, not {sample_rate}")
    return builders[sample_rate](pretrained=False)


class EncodecTokenizer:
    """``__call__(wav [N], sample_rate) -> int64 [n_q, frames]``."""

    version = "encodec-v1"

    def __init__(self, model: str | Path, device: str | None = "auto") -> None:
        folder = resolve_model_dir(model)
        self.name = str(model)
        config = json.loads((folder / CONFIG_NAME).read_text())
        self.device = pick_device(device)
        self.model = build_encodec(int(config.get("sample_rate", 24000)))
        self.model.load_state_dict(torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True))
        self.model.set_target_bandwidth(float(config.get("bandwidth", 6.0)))
        self.model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        audio = resample(wav.reshape(-1), sample_rate, self.model.sample_rate).to(self.device)
        audio = audio.reshape(1, 1, -1).expand(1, self.model.channels, -1)
        frames = self.model.encode(audio)
        return torch.cat([codes for codes, _ in frames], dim=-1)[0].long().cpu()

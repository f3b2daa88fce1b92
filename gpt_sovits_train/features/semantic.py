"""Semantic tokens: SSL features → codes of a SoVITS quantizer, as a pluggable callable.

The SoVITS network lives in ``models/sovits`` (``SynthesizerTrn.extract_latent(ssl) -> [B, 1, T/2]``).
Data prep and the GPT DataModule only need "SSL in, codes out", so they accept any callable with the
:class:`SemanticExtractor` signature; :class:`LatentCodeExtractor` adapts a module with ``extract_latent``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch


class SemanticExtractor(Protocol):
    def __call__(self, ssl: torch.Tensor) -> torch.Tensor:
        """``ssl [768, T50]`` → int64 codes ``[T25]``."""


class LatentCodeExtractor:
    """Wrap a network exposing ``extract_latent(ssl [B,768,T]) -> codes [B,1,T/2]`` (v2's SynthesizerTrn)."""

    version = "sovits-extract_latent-v1"

    def __init__(self, model: torch.nn.Module | Callable[[], torch.nn.Module], device: str = "cpu") -> None:
        network = model if isinstance(model, torch.nn.Module) else model()
        if not hasattr(network, "extract_latent"):
            raise TypeError(f"{type(network).__name__} has no extract_latent(ssl); pass a SoVITS SynthesizerTrn")
        self.device = torch.device(device)
        self.model = network.to(self.device).eval()
        self.name = type(network).__name__

    @torch.inference_mode()
    def __call__(self, ssl: torch.Tensor) -> torch.Tensor:
        parameter = next(self.model.parameters(), None)
        dtype = parameter.dtype if parameter is not None else torch.float32
        codes = self.model.extract_latent(ssl.unsqueeze(0).to(self.device, dtype))
        return codes.reshape(-1).long().cpu()

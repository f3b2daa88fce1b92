"""Build a ready :class:`Synthesizer` from a Hydra config (networks, weights, feature extractors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from gpt_sovits_train.inference.loading import build_network, gpt_config_from_v2, network_config_beside, network_weights
from gpt_sovits_train.inference.synthesizer import SEMANTIC_HZ, GenerateFn, SamplingSettings, Synthesizer
from gpt_sovits_train.interchange.gpt_sovits_v2 import V2FormatError, read_gpt_v2


def gpt_generate_fn(gpt: nn.Module) -> GenerateFn:
    """Adapt a v2-style GPT network to the synthesizer's ``generate`` signature.

    Uses the network's KV-cache decoder with the v2 ``infer_panel`` contract: returns ``(y, idx)`` where ``y``
    holds prompt + new tokens and the last ``idx`` of them are new (EOS not included).
    """

    def generate(
        phones: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, settings: SamplingSettings
    ) -> torch.Tensor:
        lengths = torch.tensor([phones.shape[1]], device=phones.device)
        y, idx = gpt.infer_panel(
            phones,
            lengths,
            prompt,
            bert,
            top_k=settings.top_k,
            top_p=settings.top_p,
            early_stop_num=int(SEMANTIC_HZ * settings.max_seconds),
            temperature=settings.temperature,
            repetition_penalty=settings.repetition_penalty,
        )
        idx = int(idx)
        return y[0, y.shape[1] - idx :] if idx > 0 else y[0, :0]

    return generate


def gpt_heads(gpt_cfg: Any) -> int:
    """Attention heads of the GPT checkpoint: ``gpt.heads``, else the run config beside our checkpoint, else the
    config inside an official v2 ``.ckpt``."""
    if gpt_cfg.get("heads"):
        return int(gpt_cfg["heads"])
    beside = network_config_beside(gpt_cfg["checkpoint"])
    if beside and beside.get("num_heads"):
        return int(beside["num_heads"])
    try:
        return int(gpt_config_from_v2(read_gpt_v2(gpt_cfg["checkpoint"]).config)["num_heads"])
    except (V2FormatError, KeyError) as error:
        checkpoint = gpt_cfg["checkpoint"]
        raise ValueError(f"set gpt.heads: it is neither in a run config beside nor inside {checkpoint}") from error


def build_gpt_generate(gpt_cfg: Any, device: torch.device) -> GenerateFn:
    """GPT stage by ``backend``: ``cached`` (fast KV-cache decoder built from the v2 weights, the default),
    ``onnx`` (ONNX Runtime on ``onnx_dir`` from gst-export), or ``network`` (our GPT network from ``net``)."""
    backend = gpt_cfg.get("backend", "cached")
    if backend == "network":
        network = build_network(gpt_cfg.get("net"), gpt_cfg["checkpoint"], "gpt").to(device)
        if hasattr(network, "infer_panel"):
            return gpt_generate_fn(network)
        # Networks without their own sampler decode through the cached KV decoder on their (v2-keyed) weights.
        from gpt_sovits_train.interchange.t2s_decode import CachedT2S

        heads = int(gpt_cfg.get("heads") or network.cfg.num_heads)
        decoder = CachedT2S(network.state_dict(), heads)
        generate = graph_generate_fn(decoder)
        generate.decoder = decoder  # type: ignore[attr-defined]
        return generate
    if backend == "onnx":
        from gpt_sovits_train.interchange.t2s_decode import OnnxGenerator

        return graph_generate_fn(OnnxGenerator(gpt_cfg["onnx_dir"]))
    if backend == "cached":
        from gpt_sovits_train.interchange.t2s_decode import CachedT2S

        decoder = CachedT2S(network_weights(gpt_cfg["checkpoint"], "gpt"), gpt_heads(gpt_cfg))
        generate = graph_generate_fn(decoder)
        generate.decoder = decoder  # type: ignore[attr-defined]  # lets streaming pull tokens step by step
        return generate
    raise ValueError(f"gpt.backend must be cached, onnx or network, got {backend!r}")


def build_synthesizer(cfg: DictConfig | dict[str, Any]) -> Synthesizer:
    """Needs ``gpt.{net,checkpoint}``, ``sovits.{net,checkpoint}``, ``features.{ssl,bert,speaker}``, ``device``."""
    device = torch.device(cfg["device"])
    generate = build_gpt_generate(cfg["gpt"], device)
    sovits = build_network(cfg["sovits"].get("net"), cfg["sovits"]["checkpoint"], "sovits").to(device)
    features = cfg["features"]
    return Synthesizer(
        generate=generate,
        sovits=sovits,
        ssl_extractor=instantiate(features["ssl"]),
        bert_extractor=instantiate(features["bert"]) if features.get("bert") else None,
        speaker_encoder=instantiate(features["speaker"]) if features.get("speaker") else None,
        model_name=str(cfg.get("model_name") or cfg["sovits"]["checkpoint"]),
        device=device,
    )


def graph_generate_fn(generator: Callable[..., Any]) -> GenerateFn:
    """Adapt a :mod:`gpt_sovits_train.interchange.t2s_decode` generator (PyTorch graph or ONNX Runtime)."""

    def generate(
        phones: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, settings: SamplingSettings
    ) -> torch.Tensor:
        result = generator(
            phones.cpu(),
            bert.cpu(),
            prompt.cpu() if prompt is not None else None,
            top_k=settings.top_k,
            top_p=settings.top_p,
            temperature=settings.temperature,
            repetition_penalty=settings.repetition_penalty,
            early_stop_num=int(SEMANTIC_HZ * settings.max_seconds),
        )
        return result.kept().to(phones.device)

    return generate


def cached_token_stream_fn(generator: Any, first_chunk: int = 8, chunk: int = 24):
    """Token chunks while the cached decoder runs (for :class:`StreamingSynthesizer`): small first chunk, then
    ``chunk`` tokens each, so the first audio leaves after ``first_chunk`` decode steps."""
    from gpt_sovits_train.interchange.t2s_decode import stream_chunks

    def token_stream(phones: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, s: SamplingSettings):
        return stream_chunks(
            generator,
            phones.cpu(),
            bert.cpu(),
            prompt.cpu() if prompt is not None else None,
            (first_chunk, chunk),
            top_k=s.top_k,
            top_p=s.top_p,
            temperature=s.temperature,
            repetition_penalty=s.repetition_penalty,
            early_stop_num=int(SEMANTIC_HZ * s.max_seconds),
        )

    return token_stream

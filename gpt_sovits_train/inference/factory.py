"""Build a ready :class:`Synthesizer` from a Hydra config (networks, weights, feature extractors)."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from gpt_sovits_train.inference.loading import (
    build_network,
    gpt_config_from_v2,
    network_config_beside,
    read_network_file,
)
from gpt_sovits_train.inference.sovits_runtime import prepare_sovits_for_inference
from gpt_sovits_train.inference.synthesizer import GenerateFn, SamplingSettings, Synthesizer
from gpt_sovits_train.interchange.t2s_decode import CachedT2S, OnnxGenerator, T2SDecoder
from gpt_sovits_train.runtime.cpu_packing import StepWeights


def gpt_heads(gpt_cfg: Any, v2_config: dict | None = None) -> int:
    """Attention heads of the GPT checkpoint: ``gpt.heads``, else the run config beside our checkpoint, else the
    config inside an official v2 ``.ckpt`` (``v2_config``, as the file was read once)."""
    if gpt_cfg.get("heads"):
        return int(gpt_cfg["heads"])
    beside = network_config_beside(gpt_cfg["checkpoint"])
    if beside and beside.get("num_heads"):
        return int(beside["num_heads"])
    try:
        return int(gpt_config_from_v2(v2_config or {})["num_heads"])
    except KeyError as error:
        checkpoint = gpt_cfg["checkpoint"]
        raise ValueError(f"set gpt.heads: it is neither in a run config beside nor inside {checkpoint}") from error


#: GPT decoding precisions: (model dtype, dtype of the per-token step's matrices or None for the same).
#: ``bf16-weights`` halves the bytes batch-1 decoding reads per token and keeps everything else float32, which
#: makes it the fast CPU setting; ``bf16`` converts the whole model (cache, prefill) and suits GPUs.
GPT_PRECISIONS: dict[str, tuple[torch.dtype, torch.dtype | None]] = {
    "fp32": (torch.float32, None),
    "bf16": (torch.bfloat16, None),
    "bf16-weights": (torch.float32, torch.bfloat16),
}


def gpt_precision(precision: str) -> tuple[torch.dtype, torch.dtype | None]:
    """``gpt.precision`` → (model dtype, step-weight dtype), with an error that lists the choices."""
    if precision not in GPT_PRECISIONS:
        raise ValueError(f"gpt.precision must be one of {sorted(GPT_PRECISIONS)}, got {precision!r}")
    return GPT_PRECISIONS[precision]


def build_gpt_generate(gpt_cfg: Any, device: torch.device) -> GenerateFn:
    """GPT stage by ``backend``, all decoding with the same rules (``models/gpt/sampling.py``):

    * ``cached`` (default): our KV decoder on the checkpoint's weights, sized from the weights themselves;
    * ``network``: our KV decoder on the network built from ``net`` (or the run config beside the checkpoint);
    * ``onnx``: ONNX Runtime on ``onnx_dir`` from ``gst-export``, driven by the same rules on the host.

    ``precision`` and ``prepack`` apply to the PyTorch backends (see :data:`GPT_PRECISIONS` and
    :class:`~gpt_sovits_train.runtime.cpu_packing.StepWeights`).
    """
    backend = gpt_cfg.get("backend", "cached")
    dtype, step_weights = gpt_precision(gpt_cfg.get("precision") or "fp32")
    prepack = bool(gpt_cfg.get("prepack", True))
    if backend == "onnx":
        return decoder_generate_fn(OnnxGenerator(gpt_cfg["onnx_dir"]))
    if backend == "network":
        network = build_network(gpt_cfg.get("net"), gpt_cfg["checkpoint"], "gpt")
        heads = int(gpt_cfg.get("heads") or network.cfg.num_heads)
        decoder = CachedT2S(network.state_dict(), heads, dtype, StepWeights(step_weights, prepack))
    elif backend == "cached":
        file = read_network_file(gpt_cfg["checkpoint"], "gpt")
        matrices = StepWeights(step_weights, prepack)
        decoder = CachedT2S(file.weights, gpt_heads(gpt_cfg, file.v2_config), dtype, matrices)
    else:
        raise ValueError(f"gpt.backend must be cached, onnx or network, got {backend!r}")
    decoder.decoder.model.to(device)
    return decoder_generate_fn(decoder)


def build_synthesizer(cfg: DictConfig | dict[str, Any]) -> Synthesizer:
    """Needs ``gpt.{checkpoint,backend,precision}``, ``sovits.{net,checkpoint,precision}``,
    ``features.{ssl,bert,speaker,codec}``, ``device`` (``conf/synthesize.yaml``). The SoVITS network is prepared
    for inference (weight norms folded, ``enc_q`` dropped; :mod:`~gpt_sovits_train.inference.sovits_runtime`)."""
    device = torch.device(cfg["device"])
    runtime = cfg.get("runtime") or "exact"
    if runtime == "exact":
        generate = build_gpt_generate(cfg["gpt"], device)
        sovits = build_network(cfg["sovits"].get("net"), cfg["sovits"]["checkpoint"], "sovits")
        sovits = prepare_sovits_for_inference(sovits, cfg["sovits"].get("precision") or "fp32", device)
    else:
        generate, sovits = _selected_runtime(cfg, runtime, device)
    features = cfg["features"]
    return Synthesizer(
        generate=generate,
        sovits=sovits,
        ssl_extractor=instantiate(features["ssl"]),
        bert_extractor=instantiate(features["bert"]) if features.get("bert") else None,
        speaker_encoder=instantiate(features["speaker"]) if features.get("speaker") else None,
        model_name=str(cfg.get("model_name") or cfg["sovits"]["checkpoint"]),
        device=device,
        codec_tokenizer=instantiate(features["codec"]) if features.get("codec") else None,
    )


def _selected_runtime(cfg: DictConfig | dict[str, Any], runtime: str, device: torch.device):
    """``runtime=fast|auto``: engines picked per CPU behind the quality gate (:mod:`gpt_sovits_train.runtime`)."""
    from gpt_sovits_train.runtime.selection import select_runtime

    if device.type != "cpu":
        raise ValueError(f"runtime={runtime} picks CPU engines; use runtime=exact with device={device}")

    def build_sovits(precision: str) -> torch.nn.Module:
        network = build_network(cfg["sovits"].get("net"), cfg["sovits"]["checkpoint"], "sovits")
        return prepare_sovits_for_inference(network, precision, device)

    gpt_cfg = cfg["gpt"]
    file = read_network_file(gpt_cfg["checkpoint"], "gpt")  # read once: weights and the v2 config inside
    choice = select_runtime(runtime, file.weights, gpt_heads(gpt_cfg, file.v2_config), build_sovits)
    return decoder_generate_fn(choice.gpt), choice.sovits


def decoder_generate_fn(decoder: T2SDecoder) -> GenerateFn:
    """Adapt a :class:`~gpt_sovits_train.interchange.t2s_decode.T2SDecoder` (``CachedT2S``, ``OnnxGenerator``,
    ``TorchGraphGenerator``) to the synthesizer's ``generate``; the decoder stays reachable as
    ``generate.decoder`` so streaming can pull tokens from it step by step.

    Every new token is returned. (The v2 UI keeps only the last ``idx`` tokens, which drops the first one when a
    sentence stops at the length limit rather than at EOS; nothing is gained by dropping it.)
    """
    move = (lambda t: t.cpu()) if decoder.inputs_on_cpu else (lambda t: t)

    def generate(
        phones: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, settings: SamplingSettings
    ) -> torch.Tensor:
        prompt = move(prompt) if prompt is not None else None
        result = decoder.generate(move(phones), move(bert), prompt, settings.gpt_options())
        return result.new_tokens.to(phones.device)

    generate.decoder = decoder  # type: ignore[attr-defined]
    return generate


def cached_token_stream_fn(decoder: T2SDecoder, first_chunk: int = 8, chunk: int = 24):
    """Token chunks while a :class:`~gpt_sovits_train.interchange.t2s_decode.T2SDecoder` runs (for
    :class:`StreamingSynthesizer`): ``first_chunk`` tokens first, so the first audio leaves after that many decode
    steps, then ``chunk`` tokens each."""

    def token_stream(phones: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, s: SamplingSettings):
        return decoder.stream(phones, bert, prompt, s.gpt_options(), (first_chunk, chunk))

    return token_stream

"""End-to-end synthesis speed (PERFORMANCE.md ``e2e_rtf``): text → wav for a 10 s utterance on CPU.

Stages timed separately, model loading excluded: frontend (text → phones), GPT (prefill + KV-cache decode of
exactly 250 tokens with the v2 sampling rules, 75-token prompt, through the synthesizer's decoder), SoVITS decode
(250 codes, 3 s reference, 60 phones, noise 0.5, the generator prepared for inference as the synthesizer does).
Weights are random at the full v2 sizes from the reference manifest: speed does not depend on their values.
Also reported: first-chunk latency of the streaming path (frontend + prefill + first chunk of tokens + its decode).

``run_e2e_rtf`` is the all-float32 figure; ``run_e2e_rtf_bf16_weights`` decodes the GPT stage with bf16 copies of
its matrices (``gpt.precision=bf16-weights``, the fast CPU setting). ``e2e_figures(precision="bf16")`` runs the SoVITS
stage in bfloat16 (the GPT stays float32); it is not a registered benchmark because on the reference CPU type
PyTorch's bf16 convolutions are many times slower than float32 (a 10 s decode took minutes), so it is only worth
running on GPUs or CPUs whose bf16 kernels are fast.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from gpt_sovits_train.models.gpt.kv_cache import KVDecoder
from gpt_sovits_train.models.gpt.model import model_from_weights
from gpt_sovits_train.models.gpt.sampling import SamplingOptions
from gpt_sovits_train.runtime.cpu_packing import StepWeights

MANIFEST = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "reference" / "v2_state_dict_manifest.json"
SEMANTIC_HZ = 25
TEXT = "The morning train to the coast leaves at seven fifteen, so please be on time."


def _manifest() -> dict[str, Any]:
    import os

    folder = os.environ.get("GST_REFERENCE_DIR")
    path = Path(folder) / "v2_state_dict_manifest.json" if folder else MANIFEST
    return json.loads(path.read_text())


def random_gpt_weights(hidden: int, layers: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random v2 GPT weights with the manifest's key layout at any size (normal(0, 0.02), unit norms/alphas)."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.02

    weights = {
        "bert_proj.weight": normal(hidden, 1024),
        "bert_proj.bias": torch.zeros(hidden),
        "ar_text_embedding.word_embeddings.weight": normal(732, hidden),
        "ar_text_position.alpha": torch.ones(1),
        "ar_audio_embedding.word_embeddings.weight": normal(1025, hidden),
        "ar_audio_position.alpha": torch.ones(1),
        "ar_predict_layer.weight": normal(1025, hidden),
    }
    for i in range(layers):
        p = f"h.layers.{i}."
        weights |= {
            p + "self_attn.in_proj_weight": normal(3 * hidden, hidden),
            p + "self_attn.in_proj_bias": torch.zeros(3 * hidden),
            p + "self_attn.out_proj.weight": normal(hidden, hidden),
            p + "self_attn.out_proj.bias": torch.zeros(hidden),
            p + "linear1.weight": normal(4 * hidden, hidden),
            p + "linear1.bias": torch.zeros(4 * hidden),
            p + "linear2.weight": normal(hidden, 4 * hidden),
            p + "linear2.bias": torch.zeros(hidden),
            p + "norm1.weight": torch.ones(hidden),
            p + "norm1.bias": torch.zeros(hidden),
            p + "norm2.weight": torch.ones(hidden),
            p + "norm2.bias": torch.zeros(hidden),
        }
    return weights


def _time_gpt(
    weights, heads: int, phones: int, prompt_len: int, tokens: int, first_chunk: int, precision: str
) -> dict[str, float]:
    """Prefill + exactly ``tokens`` decode steps with the v2 rules (EOS held off so the length is fixed)."""
    from gpt_sovits_train.inference.factory import gpt_precision

    dtype, step_weights = gpt_precision(precision)
    decoder = KVDecoder(model_from_weights(weights, heads, dtype), StepWeights(step_weights))
    phoneme_ids = torch.randint(0, 732, (1, phones))
    bert = torch.zeros(1, 1024, phones, dtype=dtype)
    prompt = torch.randint(0, 1024, (1, prompt_len))
    options = SamplingOptions.v2_compatible(max_new_tokens=tokens, eos_blocked_steps=tokens)
    decoder.generate(phoneme_ids, bert, prompt, options=replace(options, max_new_tokens=3))  # warm-up
    start = time.perf_counter()
    first_chunk_time = float("nan")
    produced = 0
    for chunk in decoder.stream(phoneme_ids, bert, prompt, options, chunk_size=tokens, first_chunk_size=first_chunk):
        produced += chunk.numel()
        if produced == chunk.numel():
            first_chunk_time = time.perf_counter() - start
    total = time.perf_counter() - start
    return {"seconds": total, "tokens_per_s": produced / total, "first_chunk_tokens_s": first_chunk_time}


def _build_sovits(quick: bool, precision: str) -> torch.nn.Module:
    """The v2 generator at full size (or small channel counts when quick), prepared as the synthesizer does."""
    from gpt_sovits_train.inference.loading import sovits_network_from_v2_config
    from gpt_sovits_train.inference.sovits_runtime import prepare_sovits_for_inference

    config = dict(_manifest()["models"]["sovits_generator_v2"]["config"])
    if quick:
        config["model"] = {
            **config["model"],
            "inter_channels": 32,
            "filter_channels": 256,
            "n_layers": 2,
            "upsample_initial_channel": 64,
        }
    return prepare_sovits_for_inference(sovits_network_from_v2_config(config), precision)


def _time_sovits(quick: bool, precision: str, tokens: int, chunk: int) -> dict[str, float]:
    """Seconds for the whole utterance's decode and for the first streamed chunk's decode (after a warm-up)."""
    from gpt_sovits_train.inference.sovits_runtime import precision_dtype

    sovits = _build_sovits(quick, precision)
    codes = torch.randint(0, 1024, (1, 1, tokens))
    text = torch.randint(1, 732, (1, 60))
    refer = torch.rand(1, 1025, 150 if not quick else 30).to(precision_dtype(precision))
    with torch.inference_mode():
        sovits.decode(codes[..., :chunk], text, refer, noise_scale=0.5, speed=1.0)  # warm-up (allocator, kernels)
        start = time.perf_counter()
        sovits.decode(codes, text, refer, noise_scale=0.5, speed=1.0)
        whole = time.perf_counter() - start
        start = time.perf_counter()
        sovits.decode(codes[..., :chunk], text, refer, noise_scale=0.5, speed=1.0)
        first = time.perf_counter() - start
    return {"seconds": whole, "first_chunk_s": first}


def e2e_figures(quick: bool = False, precision: str = "fp32", gpt_precision: str = "fp32") -> dict[str, Any]:
    """Stage timings, RTF and first-chunk latency, SoVITS in ``precision`` and the GPT in ``gpt_precision``."""
    from gpt_sovits_train.text.frontend import phonemize

    torch.manual_seed(0)
    tokens = 50 if quick else 250
    audio_seconds = tokens / SEMANTIC_HZ
    hidden, layers, heads = (64, 2, 4) if quick else (512, 24, 16)
    chunk = 12 if quick else 24
    figures: dict[str, Any] = {
        "audio_seconds": audio_seconds,
        "gpt_size": f"{layers}x{hidden}",
        "gpt_precision": gpt_precision,
        "sovits_precision": precision,
        "threads": torch.get_num_threads(),
    }

    phonemize(TEXT, "en")  # warm-up: dictionaries load on first use (model loading is excluded)
    start = time.perf_counter()
    phonemize(TEXT, "en")
    frontend = time.perf_counter() - start

    gpt = _time_gpt(random_gpt_weights(hidden, layers), heads, 60, 75, tokens, chunk, gpt_precision)
    sovits = _time_sovits(quick, precision, tokens, chunk)
    figures["gpt_tokens_per_s"] = round(gpt["tokens_per_s"], 2)
    stages = {"frontend": frontend, "gpt": gpt["seconds"], "sovits": sovits["seconds"]}
    total = sum(stages.values())
    figures["first_chunk_latency_s"] = round(frontend + gpt["first_chunk_tokens_s"] + sovits["first_chunk_s"], 4)
    figures["stage_rtf"] = {k: round(v / audio_seconds, 4) for k, v in stages.items()}
    figures["sovits_share"] = round(stages["sovits"] / total, 3)
    figures["rtf"] = round(total / audio_seconds, 4)
    figures["target_rtf"] = 0.5
    figures["reference_rtf"] = 1.1
    return figures


def run_e2e_rtf(quick: bool = False) -> dict[str, Any]:
    """RTF per stage and first-chunk latency for a 10 s utterance, all float32 (2 s and tiny sizes when quick)."""
    return e2e_figures(quick, "fp32")


def run_e2e_rtf_bf16_weights(quick: bool = False) -> dict[str, Any]:
    """The same with ``gpt.precision=bf16-weights`` (the fast CPU decoding setting); SoVITS stays float32."""
    return e2e_figures(quick, "fp32", "bf16-weights")


if __name__ == "__main__":
    import sys

    print(json.dumps(e2e_figures(precision=sys.argv[1] if len(sys.argv) > 1 else "fp32"), indent=1))

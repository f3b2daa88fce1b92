"""Each synthesis runtime on the PERFORMANCE.md workloads, with its quality-gate figures (full v2 size).

For every GPT engine of :mod:`gpt_sovits_train.runtime.selection` (``torch-fp32`` is ``runtime=exact``):

* ``run_gpt_decode_b1_runtimes``: the batch-1 decode workload (60 phonemes, 75-token prompt, exactly 250 new
  tokens, v2 sampling rules) through the engine's own streaming loop, with the first chunk's latency; the step's
  weight count and bytes per weight so ``scripts/bench.py`` can place each figure under its bandwidth bound;
* ``run_quality_gate``: every fast engine against the exact path (:func:`GateInputs.full`: 4 prompts × 100
  teacher-forced and free-running greedy steps), and the bf16 SoVITS decoder against fp32 where the CPU has bf16
  units (elsewhere it is not a candidate and is reported as such, not run: emulated bf16 convolutions take minutes);
* ``run_e2e_runtimes``: text → wav RTF and first streaming-chunk latency per engine (frontend + GPT + SoVITS
  decode of the 10 s utterance; SoVITS in bf16 only where the CPU has bf16 units).

Weights are random (normal(0, 0.02), ``benchmarks/e2e.py``): speed does not depend on their values, but the gate's
figures do — they say how an engine's arithmetic behaves on weights of this scale, and the synthesizer re-runs
the gate on the user's own weights before ``runtime=auto`` picks anything.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import torch

from gpt_sovits_train.benchmarks.e2e import SEMANTIC_HZ, TEXT, _time_sovits, random_gpt_weights
from gpt_sovits_train.benchmarks.machine import gpt_step_weight_count
from gpt_sovits_train.models.gpt.sampling import SamplingOptions
from gpt_sovits_train.runtime.cpu import has_bf16_units
from gpt_sovits_train.runtime.quality_gate import GateInputs, gpt_gate
from gpt_sovits_train.runtime.selection import GPT_ENGINES, build_gpt_engine, gpt_engine_supported

#: Bytes-per-weight key (``benchmarks.machine.BYTES_PER_WEIGHT``) of each engine's step matrices.
ENGINE_PRECISION = {"torch-fp32": "fp32", "torch-bf16-weights": "bf16", "ort-int8": "int8", "ort-int4": "int4"}


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"hidden": 64, "layers": 2, "heads": 4, "phones": 12, "prompt": 10, "tokens": 30, "chunk": 8}
    return {"hidden": 512, "layers": 24, "heads": 16, "phones": 60, "prompt": 75, "tokens": 250, "chunk": 24}


def _engines() -> list[str]:
    return [engine for engine in GPT_ENGINES if gpt_engine_supported(engine)[0]]


def time_engine_decode(decoder: Any, sizes: dict[str, int], seed: int = 1) -> dict[str, float]:
    """Prefill + exactly ``tokens`` steps (EOS held off) through ``decoder.stream``; seconds, tokens/s and the time
    to the first chunk of ``chunk`` tokens (after a 3-token warm-up decode)."""
    generator = torch.Generator().manual_seed(seed)
    phones = torch.randint(1, 732, (1, sizes["phones"]), generator=generator)
    bert = torch.randn(1, 1024, sizes["phones"], generator=generator)
    prompt = torch.randint(0, 1024, (1, sizes["prompt"]), generator=generator)
    tokens = sizes["tokens"]
    options = SamplingOptions.v2_compatible(max_new_tokens=tokens, eos_blocked_steps=tokens)
    warm = SamplingOptions.v2_compatible(max_new_tokens=3, eos_blocked_steps=3)
    for _ in decoder.stream(phones, bert, prompt, warm, (3, 3)):
        pass
    produced, first = 0, float("nan")
    start = time.perf_counter()
    for chunk in decoder.stream(phones, bert, prompt, options, (sizes["chunk"], tokens)):
        if not produced:
            first = time.perf_counter() - start
        produced += chunk.numel()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": produced, "tokens_per_s": produced / seconds, "first_chunk_tokens_s": first}


def run_gpt_decode_b1_runtimes(quick: bool = False) -> dict[str, Any]:
    """Batch-1 decode per GPT engine (tokens/s, first chunk), with the figures the bandwidth bound needs."""
    torch.set_num_threads(2)
    sizes = _sizes(quick)
    weights = random_gpt_weights(sizes["hidden"], sizes["layers"])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine in _engines():
            decoder = build_gpt_engine(engine, weights, sizes["heads"], folder)
            timing = time_engine_decode(decoder, sizes)
            results[engine] = {
                "tokens_per_s": round(timing["tokens_per_s"], 1),
                "seconds": round(timing["seconds"], 3),
                "first_chunk_tokens_s": round(timing["first_chunk_tokens_s"], 4),
                "step_weights": gpt_step_weight_count(sizes["hidden"], sizes["layers"]),
                "weight_precision": ENGINE_PRECISION[engine],
            }
            del decoder
    return {"size": "tiny" if quick else "v2", "batch": 1, "new_tokens": sizes["tokens"], "engines": results}


def run_quality_gate(quick: bool = False) -> dict[str, Any]:
    """The gate per fast engine on the benchmark's random weights (tiny inputs when ``quick``)."""
    torch.set_num_threads(2)
    sizes = _sizes(quick)
    weights = random_gpt_weights(sizes["hidden"], sizes["layers"])
    inputs = GateInputs.tiny() if quick else GateInputs.full()
    exact = build_gpt_engine("torch-fp32", weights, sizes["heads"]).decoder
    gpt: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine in _engines():
            if engine != "torch-fp32":
                candidate = build_gpt_engine(engine, weights, sizes["heads"], folder).decoder
                gpt[engine] = gpt_gate(exact, candidate, inputs).as_dict()
    sovits: dict[str, Any]
    if has_bf16_units():
        from gpt_sovits_train.benchmarks.e2e import _build_sovits
        from gpt_sovits_train.runtime.quality_gate import network_decode, sovits_gate, sovits_inputs

        gate_inputs = sovits_inputs(25 if quick else 100, 20 if quick else 60, 30 if quick else 150)
        exact_net, fast_net = _build_sovits(quick, "fp32"), _build_sovits(quick, "bf16")
        sovits = {"bf16": sovits_gate(network_decode(exact_net), network_decode(fast_net), gate_inputs).as_dict()}
    else:
        sovits = {"bf16": {"skipped": "no bf16 units on this CPU: bf16 SoVITS is not a candidate here"}}
    return {"size": "tiny" if quick else "v2", "gpt": gpt, "sovits": sovits}


def run_e2e_runtimes(quick: bool = False) -> dict[str, Any]:
    """Text → wav RTF and first streaming-chunk latency with each GPT engine (SoVITS: bf16 on CPUs with bf16
    units, else the exact fp32 decoder)."""
    from gpt_sovits_train.text.frontend import phonemize

    torch.set_num_threads(2)
    torch.manual_seed(0)
    sizes = _sizes(quick)
    audio_seconds = sizes["tokens"] / SEMANTIC_HZ
    phonemize(TEXT, "en")  # dictionaries load on first use
    start = time.perf_counter()
    phonemize(TEXT, "en")
    frontend = time.perf_counter() - start
    sovits_precision = "bf16" if has_bf16_units() else "fp32"
    sovits = _time_sovits(quick, sovits_precision, sizes["tokens"], sizes["chunk"])
    weights = random_gpt_weights(sizes["hidden"], sizes["layers"])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for engine in _engines():
            gpt = time_engine_decode(build_gpt_engine(engine, weights, sizes["heads"], folder), sizes)
            total = frontend + gpt["seconds"] + sovits["seconds"]
            results[engine] = {
                "rtf": round(total / audio_seconds, 4),
                "stage_rtf": {
                    "frontend": round(frontend / audio_seconds, 4),
                    "gpt": round(gpt["seconds"] / audio_seconds, 4),
                    "sovits": round(sovits["seconds"] / audio_seconds, 4),
                },
                "first_chunk_latency_s": round(frontend + gpt["first_chunk_tokens_s"] + sovits["first_chunk_s"], 4),
            }
    return {
        "size": "tiny" if quick else "v2",
        "audio_seconds": audio_seconds,
        "sovits_precision": sovits_precision,
        "first_chunk_tokens": sizes["chunk"],
        "engines": results,
    }

"""``runtime=exact|fast|auto``: which engine runs each synthesis stage on this CPU, and why.

* ``exact``: today's float32 PyTorch path, the reference for parity (the factory does not come here for it);
* ``fast``: the fewest bytes per token that pass the quality gate — the GPT stage on ONNX Runtime with 4-bit,
  else 8-bit weight-only matrices, else PyTorch with bf16 step weights; the SoVITS decoder in bf16 where the CPU
  has bf16 units (AMX / AVX-512-bf16), else float32. If no GPT engine passes, this is an error, not a silent
  fallback;
* ``auto``: every engine this CPU supports is gated, the ones that pass are timed on a short decode, and the
  fastest wins — the exact path included, so ``auto`` never picks something slower than exact. The log says
  what was picked and why every other candidate was rejected (unsupported here, failed the gate with its figures,
  or slower with its figures).

What is "supported" is read at run time (:mod:`gpt_sovits_train.runtime.cpu`): bf16 convolutions are only a
candidate on CPUs with bf16 units, because PyTorch emulates them elsewhere at a fraction of fp32 speed.
The gate (:mod:`gpt_sovits_train.runtime.quality_gate`) runs on the user's own weights, with a small seeded input
set (:func:`selection_gate_inputs`), so selection adds seconds to start-up, not minutes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from gpt_sovits_train.interchange.t2s_decode import CachedT2S
from gpt_sovits_train.models.gpt.decoding import DecodeBackend
from gpt_sovits_train.runtime.cpu import has_bf16_units
from gpt_sovits_train.runtime.cpu_packing import StepWeights
from gpt_sovits_train.runtime.quality_gate import (
    GateInputs,
    gpt_gate,
    network_decode,
    prefill_prompt,
    sovits_gate,
    sovits_inputs,
)

log = logging.getLogger(__name__)

RUNTIMES = ("exact", "fast", "auto")
#: GPT engines, fewest bytes per token first (the ``fast`` preference order); ``torch-fp32`` is the exact path.
GPT_ENGINES = ("ort-int4", "ort-int8", "torch-bf16-weights", "torch-fp32")
SOVITS_PRECISIONS = ("bf16", "fp32")


@dataclass
class RuntimeChoice:
    """The picked engines, ready to run, and the record of how they were picked (for logs and bench JSON)."""

    gpt_engine: str
    gpt: Any  # a t2s_decode decoder: CachedT2S or OrtGPT
    sovits_precision: str
    sovits: torch.nn.Module | None
    report: dict[str, Any] = field(default_factory=dict)


def build_gpt_engine(engine: str, weights: Mapping[str, torch.Tensor], heads: int, workdir: str | None = None):
    """A decoder for ``engine`` (see :data:`GPT_ENGINES`), with ``prefill``/``step`` for the gate."""
    if engine == "torch-fp32":
        return CachedT2S(weights, heads, matrices=StepWeights())
    if engine == "torch-bf16-weights":
        return CachedT2S(weights, heads, torch.float32, StepWeights(torch.bfloat16))
    if engine.startswith("ort-"):
        from gpt_sovits_train.runtime.onnx_gpt import OrtGPT

        # The sessions hold the graphs in memory once built: the exported files (~400 MB at v2 size) go.
        with tempfile.TemporaryDirectory(prefix=f"gst-{engine}-", dir=workdir) as folder:
            return OrtGPT(weights, heads, folder, engine.removeprefix("ort-"))
    raise ValueError(f"GPT engine must be one of {GPT_ENGINES}, got {engine!r}")


def gpt_engine_supported(engine: str) -> tuple[bool, str]:
    """Whether ``engine`` can run here, and if not why (ONNX Runtime missing)."""
    if engine.startswith("ort-"):
        try:
            import onnxruntime  # noqa: F401
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # noqa: F401
        except ImportError as error:
            return False, f"onnxruntime quantization unavailable ({error}); pip install 'gpt-sovits-train[runtime]'"
    return True, ""


def selection_gate_inputs() -> GateInputs:
    """The start-up gate: 2 prompts of 32 phonemes + 32 prompt tokens, 48 tokens each (96 compared steps)."""
    return GateInputs.seeded(2, 32, 32, 48, seed=1234)


@torch.inference_mode()
def decode_tokens_per_s(backend: DecodeBackend, inputs: GateInputs, steps: int = 32) -> float:
    """Batch-1 step rate of a decode backend after a prefill (the first step is warm-up)."""
    phones, bert, prompt = inputs.prompts[0]
    prefill_prompt(backend, phones, bert, prompt, steps + 1)
    position = prompt.shape[1]
    backend.step(torch.tensor([0]), torch.tensor([position]))
    start = time.perf_counter()
    for i in range(steps):
        backend.step(torch.tensor([i % 1024]), torch.tensor([position + 1 + i]))
    return steps / (time.perf_counter() - start)


def choose_gpt(
    runtime: str, weights: Mapping[str, torch.Tensor], heads: int, inputs: GateInputs | None = None
) -> tuple[str, Any, dict[str, Any]]:
    """(engine name, decoder, report) for ``runtime`` ``fast`` or ``auto`` (module docstring)."""
    inputs = inputs or selection_gate_inputs()
    exact = build_gpt_engine("torch-fp32", weights, heads)
    report: dict[str, Any] = {}
    passing: list[tuple[str, Any, float]] = []
    for engine in GPT_ENGINES:
        ok, why = gpt_engine_supported(engine)
        if not ok:
            report[engine] = {"picked": False, "rejected": why}
            continue
        decoder = exact if engine == "torch-fp32" else build_gpt_engine(engine, weights, heads)
        entry: dict[str, Any] = {}
        if engine != "torch-fp32":
            gate = gpt_gate(exact.decoder, decoder.decoder, inputs)
            entry["gate"] = gate.as_dict()
            if not gate.passed:
                entry["rejected"] = f"quality gate {gate.summary()}"
                report[engine] = entry
                continue
        if runtime == "fast" and engine != "torch-fp32":
            report[engine] = entry | {"picked": True, "why": "fewest bytes per token that passes the gate"}
            return engine, decoder, report
        if runtime == "auto":
            entry["tokens_per_s"] = round(decode_tokens_per_s(decoder.decoder, inputs), 1)
            passing.append((engine, decoder, entry["tokens_per_s"]))
        report[engine] = entry
    if runtime == "fast":
        raise RuntimeError(f"runtime=fast: no fast GPT engine passed the quality gate: {report}")
    engine, decoder, speed = max(passing, key=lambda item: item[2])
    for name, _, rate in passing:
        report[name]["picked"] = name == engine
        if name != engine:
            report[name]["rejected"] = f"slower: {rate} tokens/s vs {speed} for {engine}"
    report[engine]["why"] = "fastest engine that passes the quality gate"
    return engine, decoder, report


def choose_sovits(
    runtime: str, build: Callable[[str], torch.nn.Module], inputs: list[tuple[torch.Tensor, ...]] | None = None
) -> tuple[str, torch.nn.Module, dict[str, Any]]:
    """(precision, prepared network, report): bf16 where the CPU has bf16 units and it passes the SNR gate.

    ``build(precision)`` returns a network prepared for inference in that precision."""
    exact = build("fp32")
    report: dict[str, Any] = {}
    if not has_bf16_units():
        report["bf16"] = {
            "rejected": "no bf16 units on this CPU (no amx_bf16/avx512_bf16): PyTorch emulates bf16 convolutions "
            "far slower than fp32"
        }
        report["fp32"] = {"picked": True, "why": "exact path; the only fast-enough SoVITS engine here"}
        return "fp32", exact, report
    inputs = inputs or sovits_inputs(25, 16, 30, seed=1234)
    fast = build("bf16")
    gate = sovits_gate(network_decode(exact), network_decode(fast), inputs)
    report["bf16"] = {"gate": gate.as_dict()}
    if not gate.passed:
        report["bf16"]["rejected"] = f"quality gate {gate.summary()}"
        report["fp32"] = {"picked": True, "why": "bf16 failed the gate"}
        return "fp32", exact, report
    if runtime == "auto":
        timings = {name: _time_decode(net, inputs[0]) for name, net in (("fp32", exact), ("bf16", fast))}
        report["bf16"]["decode_s"] = round(timings["bf16"], 4)
        report["fp32"] = {"decode_s": round(timings["fp32"], 4)}
        if timings["fp32"] <= timings["bf16"]:
            report["bf16"]["rejected"] = f"slower: {timings['bf16']:.3f} s vs {timings['fp32']:.3f} s in fp32"
            report["fp32"] |= {"picked": True, "why": "faster than bf16 here"}
            return "fp32", exact, report
    report["bf16"] |= {"picked": True, "why": "bf16 units present and the gate passed"}
    return "bf16", fast, report


@torch.inference_mode()
def _time_decode(network: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> float:
    decode = network_decode(network)
    decode(*example)
    start = time.perf_counter()
    decode(*example)
    return time.perf_counter() - start


def select_runtime(
    runtime: str,
    weights: Mapping[str, torch.Tensor],
    heads: int,
    build_sovits: Callable[[str], torch.nn.Module] | None = None,
    gate_inputs: GateInputs | None = None,
) -> RuntimeChoice:
    """Pick the engines for ``runtime`` (``fast`` | ``auto``; ``exact`` builds the exact path) and log why.

    ``build_sovits(precision)`` returns the prepared SoVITS network; ``gate_inputs`` defaults to
    :func:`selection_gate_inputs`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "exact":
        decoder = build_gpt_engine("torch-fp32", weights, heads)
        sovits = build_sovits("fp32") if build_sovits else None
        return RuntimeChoice("torch-fp32", decoder, "fp32", sovits, {"runtime": "exact"})
    engine, decoder, gpt_report = choose_gpt(runtime, weights, heads, gate_inputs)
    precision, sovits, sovits_report = (
        choose_sovits(runtime, build_sovits) if build_sovits else ("fp32", None, {"skipped": "no SoVITS network"})
    )
    report = {"runtime": runtime, "bf16_units": has_bf16_units(), "gpt": gpt_report, "sovits": sovits_report}
    log.info("runtime=%s picked GPT engine %s and SoVITS %s on this CPU", runtime, engine, precision)
    for stage, entries in (("GPT", gpt_report), ("SoVITS", sovits_report)):
        for name, entry in entries.items():
            if isinstance(entry, dict) and entry.get("rejected"):
                log.info("runtime=%s %s engine %s rejected: %s", runtime, stage, name, entry["rejected"])
    return RuntimeChoice(engine, decoder, precision, sovits, report)

"""The machine's own bounds, measured in the same run as the figures they bound.

Shared machines move 10-20 % between runs and differ in kind (AVX2-only vs AVX-512-bf16/AMX), so every benchmark
JSON carries what this CPU can do right now: its ISA flags, how fast it reads memory, and its fp32/bf16 matrix
peaks. A batch-1 decode reads every weight once per token, so ``bandwidth / bytes per token`` is its ceiling and
``tokens/s ÷ that ceiling`` says how close a runtime is to the hardware, independently of the reference.

Method (2 threads unless the caller set otherwise):

* read bandwidth: ``torch.sum`` over a float32 buffer far larger than the caches (256 MB), best of several rounds —
  a streaming read with negligible arithmetic, like a weight-streaming decode;
* GEMM peak: square ``torch.mm`` at 1024 (fp32; bf16 where the CPU has bf16 units, else a smaller size because
  emulated bf16 is slow), best of several rounds, ``2·n³`` FLOPs each.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from gpt_sovits_train.runtime.cpu import cpu_model, has_bf16_units, isa_summary

#: Bytes per stored weight for each decode precision; the 4-bit and int8 figures include their block scales
#: (one float32 scale per 32 weights for 4-bit, one per output column for int8, negligible).
BYTES_PER_WEIGHT = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5 + 4 / 32}


def _best_seconds(fn, rounds: int) -> float:
    fn()  # warm-up: first touch, kernel selection
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def read_bandwidth_gbs(megabytes: int = 256, rounds: int = 5) -> float:
    """Streaming read bandwidth in GB/s (best of ``rounds`` sums over a ``megabytes`` float32 buffer)."""
    buffer = torch.ones(megabytes * 1024 * 1024 // 4)
    seconds = _best_seconds(lambda: buffer.sum(), rounds)
    return buffer.numel() * 4 / seconds / 1e9


def gemm_gflops(dtype: torch.dtype, n: int = 1024, rounds: int = 3) -> float:
    """Square matrix-product rate in GFLOP/s at size ``n`` and ``dtype`` (best of ``rounds``)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    seconds = _best_seconds(lambda: torch.mm(a, b), rounds)
    return 2 * n**3 / seconds / 1e9


def machine_bounds(quick: bool = False) -> dict[str, Any]:
    """ISA flags, read bandwidth and GEMM peaks of this CPU, measured now (small sizes when ``quick``)."""
    bf16_native = has_bf16_units()
    return {
        "cpu_model": cpu_model(),
        "isa": isa_summary(),
        "bf16_units": bf16_native,
        "threads": torch.get_num_threads(),
        "read_bandwidth_gbs": round(read_bandwidth_gbs(32 if quick else 256, 2 if quick else 5), 2),
        "gemm_fp32_gflops": round(gemm_gflops(torch.float32, 256 if quick else 1024), 1),
        # Emulated bf16 on AVX2 runs at a few GFLOP/s: a smaller matrix keeps the measurement to a second.
        "gemm_bf16_gflops": round(gemm_gflops(torch.bfloat16, 256 if quick or not bf16_native else 1024), 1),
    }


def gpt_step_weight_count(hidden: int, layers: int, vocab: int = 1025) -> int:
    """Weights one KV-cache step reads: per layer QKV (3d²), output (d²) and the 4d feed-forward pair (8d²),
    plus the prediction layer. Embedding rows and norms are a few KB and left out."""
    return layers * 12 * hidden * hidden + vocab * hidden


def decode_bound(
    tokens_per_s: float, weights: int, precision: str, bandwidth_gbs: float, batch: int = 1
) -> dict[str, float]:
    """The weight-streaming ceiling of a decode at ``precision`` and where ``tokens_per_s`` sits under it.

    At batch ``b`` one pass over the weights serves ``b`` tokens, so the ceiling is ``b`` times higher (and a
    batched decode soon becomes compute bound instead: the fraction is then an upper estimate of headroom)."""
    megabytes = weights * BYTES_PER_WEIGHT[precision] / 1e6
    ceiling = batch * bandwidth_gbs * 1e3 / megabytes
    return {
        "weight_mb_per_step": round(megabytes, 1),
        "bound_tokens_per_s": round(ceiling, 1),
        "fraction_of_bound": round(tokens_per_s / ceiling, 3),
    }

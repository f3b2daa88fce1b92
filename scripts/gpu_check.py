#!/usr/bin/env python
"""One-shot GPU check (``make gpu-check``): the PERFORMANCE.md GPU figures in one JSON, in under 8 minutes.

    python scripts/gpu_check.py --out gpu_check.json      # on a machine with one CUDA GPU
    python scripts/gpu_check.py --dry-run                 # tiny sizes on CPU with gloo (what the tests run)

Measured (targets from issue 18 / PERFORMANCE.md, reported beside each figure, never asserted):

* ``gpt_train``: GPT-stage training step in bf16 autocast at full v2 size (batch 8, 60 phonemes, 250 semantic
  tokens): semantic tokens/s and model-FLOPs utilization — ``6·params·tokens`` plus attention
  (``12·layers·width·sequence²`` per sample) over the GPU's bf16 peak (target ≥ 40 % on H100/H200);
* ``sovits_train``: the ``sovits_train`` workload's generator + discriminator step, steps/s in bf16 and in fp16
  (with a GradScaler);
* ``gpt_decode_b1``: batch-1 KV-cache decode in bf16, eager and with ``torch.compile`` of the per-token step
  (target ≥ 1,000 tokens/s); a compile failure is reported, not fatal;
* ``e2e_rtf``: GPT decode of 250 tokens + SoVITS decode of the 10 s utterance (target ≤ 0.01);
* ``data_loader``: share of step time spent waiting on our GPTDataModule (demo corpus shards prepared with the
  random-init extractors, 2 workers) while the GPT trains on its batches (target < 5 %);
* ``ddp``: a 1-process DistributedDataParallel run through NCCL (gloo in ``--dry-run``): init, all-reduce, steps.

Dry runs time a single call per figure (no warm-up): they check the code paths, not speed. Each section runs
under its own try/except so one failure still leaves the others' figures; the exit code is 1 if any section
failed. ``--dry-run`` uses tiny sizes, the CPU and gloo, so CI keeps this script from rotting.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SEMANTIC_HZ = 25


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, warmup: int, steps: int) -> float:
    """Mean seconds per call after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _gpt_module(dry: bool, device: torch.device) -> torch.nn.Module:
    from gpt_sovits_train.benchmarks.scaling import build_gpt_module

    return build_gpt_module("tiny" if dry else "v2").to(device).train()


def _gpt_batch(dry: bool, device: torch.device, batch: int | None = None) -> dict[str, Any]:
    from gpt_sovits_train.benchmarks.scaling import synthetic_gpt_batch

    b, p, s = (2, 12, 40) if dry else (batch or 8, 60, 250)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in synthetic_gpt_batch(b, p, s).items()}


def _peak_bf16(device: torch.device) -> float | None:
    from gpt_sovits_train.callbacks.throughput import peak_flops

    return peak_flops(torch.cuda.get_device_name(device), "bf16-mixed") if device.type == "cuda" else None


def gpt_train(dry: bool, device: torch.device) -> dict[str, Any]:
    module = _gpt_module(dry, device)
    batch = _gpt_batch(dry, device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = module.compute_losses(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = _timed(step, device, 0 if dry else 3, 1 if dry else 10)
    b, p = batch["phoneme_ids"].shape
    s = batch["semantic_ids"].shape[1]
    params = sum(x.numel() for x in module.parameters())
    cfg = module.net.cfg if hasattr(module, "net") else None
    layers = getattr(cfg, "num_layers", 24)
    width = getattr(cfg, "hidden_dim", 512)
    flops = 6 * params * b * (p + s) + 12 * layers * width * (p + s) ** 2 * b
    peak = _peak_bf16(device)
    return {
        "size": "tiny" if dry else "v2",
        "batch": b,
        "s_per_step": round(seconds, 4),
        "semantic_tokens_per_s": round(b * s / seconds, 1),
        "model_tflops": round(flops / seconds / 1e12, 3),
        "mfu": round(flops / seconds / peak, 4) if peak else None,
        "peak_bf16_tflops": peak / 1e12 if peak else None,
        "target_mfu": 0.40,
    }


def sovits_train(dry: bool, device: torch.device) -> dict[str, Any]:
    from gpt_sovits_train.benchmarks.sovits import sovits_train_step

    figures = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        step = sovits_train_step(dry, device, dtype)
        seconds = _timed(step, device, 0 if dry else 1, 1 if dry else 5)
        figures[name] = {"steps_per_s": round(1 / seconds, 3), "s_per_step": round(seconds, 4)}
    return figures


def _decoder_inputs(dry: bool, device: torch.device):
    p, prompt = (12, 10) if dry else (60, 75)
    generator = torch.Generator().manual_seed(1)
    return (
        torch.randint(1, 732, (1, p), generator=generator).to(device),
        torch.randn(1, 1024, p, generator=generator).to(device, torch.bfloat16),
        torch.randint(0, 1024, (1, prompt), generator=generator).to(device),
    )


def _decode_rate(decoder, dry: bool, device: torch.device) -> tuple[float, float]:
    from gpt_sovits_train.models.gpt.sampling import SamplingOptions

    tokens = 20 if dry else 250
    phones, bert, prompt = _decoder_inputs(dry, device)
    options = SamplingOptions.v2_compatible(max_new_tokens=tokens, eos_blocked_steps=tokens)
    decoder.generate(phones, bert, prompt, options=SamplingOptions(max_new_tokens=4, eos_blocked_steps=4))
    _sync(device)
    start = time.perf_counter()
    out = decoder.generate(phones, bert, prompt, options=options)
    _sync(device)
    seconds = time.perf_counter() - start
    return int(out.lengths.sum()) / seconds, seconds


def gpt_decode_b1(dry: bool, device: torch.device) -> dict[str, Any]:
    from gpt_sovits_train.models.gpt.kv_cache import KVDecoder

    model = _gpt_module(dry, device).net.eval().to(torch.bfloat16)
    figures: dict[str, Any] = {"dtype": "bf16", "target_tokens_per_s": 1000}
    eager, _ = _decode_rate(KVDecoder(model), dry, device)
    figures["eager_tokens_per_s"] = round(eager, 1)
    try:
        compiled = KVDecoder(model)
        # Dry runs trace with the eager backend (no C++/Triton code generation on a CPU test machine).
        compiled.step = torch.compile(compiled.step, dynamic=True, backend="eager" if dry else "inductor")
        rate, _ = _decode_rate(compiled, dry, device)
        figures["compiled_tokens_per_s"] = round(rate, 1)
    except Exception as error:  # a compile failure is a figure, not a crash
        figures["compiled_error"] = f"{type(error).__name__}: {str(error)[:300]}"
    return figures


def e2e_rtf(dry: bool, device: torch.device) -> dict[str, Any]:
    from gpt_sovits_train.benchmarks.e2e import _build_sovits
    from gpt_sovits_train.models.gpt.kv_cache import KVDecoder

    model = _gpt_module(dry, device).net.eval().to(torch.bfloat16)
    _, gpt_seconds = _decode_rate(KVDecoder(model), dry, device)
    tokens = 20 if dry else 250
    sovits = _build_sovits(dry, "bf16").to(device)
    codes = torch.randint(0, 1024, (1, 1, tokens), device=device)
    text = torch.randint(1, 732, (1, 60), device=device)
    refer = torch.rand(1, 1025, 30 if dry else 150, device=device, dtype=torch.bfloat16)
    with torch.inference_mode():
        seconds = _timed(
            lambda: sovits.decode(codes, text, refer, noise_scale=0.5), device, 0 if dry else 1, 1 if dry else 3
        )
    audio = tokens / SEMANTIC_HZ
    return {
        "audio_seconds": audio,
        "gpt_rtf": round(gpt_seconds / audio, 5),
        "sovits_rtf": round(seconds / audio, 5),
        "rtf": round((gpt_seconds + seconds) / audio, 5),
        "target_rtf": 0.01,
    }


def data_loader(dry: bool, device: torch.device) -> dict[str, Any]:
    from gpt_sovits_train.benchmarks.data import _prepare
    from gpt_sovits_train.data.datamodule import GPTDataModule
    from gpt_sovits_train.features.random_init import RandomSemanticQuantizer
    from gpt_sovits_train.features.semantic import LatentCodeExtractor

    module = _gpt_module(dry, device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    waited = total = 0.0
    steps = 0
    with tempfile.TemporaryDirectory() as tmp:
        shards, _, _ = _prepare(Path(tmp), 8 if dry else 40, with_text_features=True)
        # Dry runs use batches of 2 so the 8 demo utterances give several steps after the first (excluded) one.
        batching = {"max_tokens": 4000, "max_batch_size": 2 if dry else 16, "max_item_length": 1500, "window": 256}
        data = GPTDataModule(
            str(shards),
            batching=batching,
            num_workers=0 if dry else 2,
            semantic_extractor=LatentCodeExtractor(RandomSemanticQuantizer()),
        )
        data.setup()
        for epoch in range(2 if dry else 3):
            iterator = iter(data.train_dataloader())
            while True:
                start = time.perf_counter()
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                got = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = module.compute_losses(batch)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                _sync(device)
                if epoch or steps:  # the very first batch includes worker start-up
                    waited += got - start
                    total += time.perf_counter() - start
                steps += 1
    return {
        "steps": steps,
        "loader_wait_share": round(waited / total, 4) if total else None,
        "target_share": 0.05,
    }


def ddp(dry: bool, device: torch.device) -> dict[str, Any]:
    import os
    import socket

    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        probe = torch.ones(4, device=device)
        dist.all_reduce(probe)
        module = _gpt_module(dry, device)
        wrapped = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index or 0] if device.type == "cuda" else None
        )
        optimizer = torch.optim.AdamW(wrapped.parameters(), lr=1e-4)
        batch = _gpt_batch(dry, device)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = wrapped.module.compute_losses(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = _timed(step, device, 0 if dry else 1, 1 if dry else 5)
        return {
            "backend": backend,
            "world_size": dist.get_world_size(),
            "all_reduce_ok": bool(probe.eq(1).all()),
            "s_per_step": round(seconds, 4),
        }
    finally:
        dist.destroy_process_group()


SECTIONS = {
    "gpt_train": gpt_train,
    "sovits_train": sovits_train,
    "gpt_decode_b1": gpt_decode_b1,
    "e2e_rtf": e2e_rtf,
    "data_loader": data_loader,
    "ddp": ddp,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU with gloo (CI)")
    parser.add_argument("--out", default="gpu_check.json", help="where to write the JSON")
    parser.add_argument("--only", action="append", default=[], help="sections whose name contains this")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run with --dry-run to check the script on CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda", None if args.dry_run else 0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "dry_run": args.dry_run,
        "results": {},
    }
    failed = False
    started = time.perf_counter()
    for name, section in SECTIONS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            report["results"][name] = section(args.dry_run, device)
        except Exception as error:  # keep the other sections' figures
            failed = True
            report["results"][name] = {"error": f"{type(error).__name__}: {error}"}
            traceback.print_exc()
        report["results"][name]["section_s"] = round(time.perf_counter() - start, 2)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2, default=float)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

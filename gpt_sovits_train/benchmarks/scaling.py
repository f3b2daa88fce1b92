"""DDP scaling efficiency of the GPT-stage training step: 1 process vs N processes (gloo on CPU, NCCL on GPU).

Each process runs the real ``GPTModule.compute_losses`` — the loss its ``training_step`` optimizes — (tiny
preset unless ``preset`` says otherwise) on a fixed
batch in the design's GPT batch format, inside ``DistributedDataParallel`` — the same wrapping Lightning uses —
with AdamW steps. Efficiency = throughput(N) / (N × throughput(1)), from steady-state steps only (warm-up and
process start-up excluded). On a shared 2-core CPU machine two processes compete for the same cores, so the
CPU figure mostly measures gradient all-reduce overhead; on GPUs it is the usual weak-scaling number.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_gpt_module(preset: str) -> torch.nn.Module:
    """The GPT LightningModule exactly as ``gst-train model=gpt model/gpt@model.net=<preset>`` builds it."""
    import hydra
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=gpt", f"model/gpt@model.net={preset}"])
    GlobalHydra.instance().clear()
    return hydra.utils.instantiate(cfg.model)


def synthetic_gpt_batch(batch_size: int, phonemes: int, semantic: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A GPT batch (docs/design.md) of random ids and zero BERT features: the cost does not depend on values."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "phoneme_ids": torch.randint(1, 732, (batch_size, phonemes), generator=gen),
        "phoneme_ids_len": torch.full((batch_size,), phonemes, dtype=torch.long),
        "bert_feature": torch.zeros(batch_size, 1024, phonemes),
        "semantic_ids": torch.randint(0, 1024, (batch_size, semantic), generator=gen),
        "semantic_ids_len": torch.full((batch_size,), semantic, dtype=torch.long),
        "keys": [f"bench{i}" for i in range(batch_size)],
    }


class _TrainingStepModule(torch.nn.Module):
    """Routes ``forward`` to the module's loss so DDP's gradient hooks see it (as Lightning's wrapper does with
    ``training_step``; the step itself logs through a Trainer, which this benchmark does not run)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self.module.compute_losses(batch)["loss"]


def _worker(rank: int, world_size: int, port: int, settings: dict[str, Any], out_dir: str) -> None:
    torch.set_num_threads(settings["threads"])
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", rank) if use_cuda else torch.device("cpu")
    if world_size > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world_size)
    torch.manual_seed(0)
    module = build_gpt_module(settings["preset"]).to(device).train()
    model: torch.nn.Module = _TrainingStepModule(module)
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if use_cuda else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
             for k, v in synthetic_gpt_batch(settings["batch_size"], settings["phonemes"],
                                             settings["semantic"], seed=rank).items()}
    timings = []
    for step in range(settings["warmup"] + settings["steps"]):
        if use_cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = model(batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if use_cuda:
            torch.cuda.synchronize(device)
        if step >= settings["warmup"]:
            timings.append(time.perf_counter() - start)
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.txt").write_text(" ".join(map(str, timings)))


def _measure(world_size: int, settings: dict[str, Any]) -> float:
    """Samples per second summed over ranks (each rank's steady-state mean step time)."""
    with tempfile.TemporaryDirectory() as out_dir:
        port = _free_port()
        if world_size == 1:
            _worker(0, 1, port, settings, out_dir)
        else:
            mp.start_processes(_worker, args=(world_size, port, settings, out_dir), nprocs=world_size,
                               start_method="spawn" if torch.cuda.is_available() else "fork")
            # fork (CPU) skips re-importing torch/hydra in the children; CUDA cannot be forked once initialized
        per_rank = [list(map(float, Path(out_dir, f"rank{r}.txt").read_text().split())) for r in range(world_size)]
    step_time = max(sum(t) / len(t) for t in per_rank)  # the slowest rank sets the pace under DDP
    return world_size * settings["batch_size"] / step_time


def run_ddp_scaling(quick: bool = False, world_size: int = 2, preset: str = "tiny") -> dict[str, Any]:
    """Throughput with 1 and ``world_size`` processes and the scaling efficiency between them."""
    settings = {
        "preset": preset,
        "batch_size": 2 if quick else 4,
        "phonemes": 20 if quick else 60,
        "semantic": 50 if quick else 250,
        "warmup": 1 if quick else 3,
        "steps": 2 if quick else 10,
        "threads": max(1, (os.cpu_count() or 2) // world_size),
    }
    single = _measure(1, settings)
    multi = _measure(world_size, settings)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    return {
        "device": device,
        "backend": "nccl" if torch.cuda.is_available() else "gloo",
        "world_size": world_size,
        "preset": preset,
        "settings": settings,
        "samples_per_sec_1": round(single, 3),
        f"samples_per_sec_{world_size}": round(multi, 3),
        "scaling_efficiency": round(multi / (world_size * single), 3),
    }

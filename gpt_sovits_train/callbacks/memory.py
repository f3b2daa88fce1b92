"""Peak memory per logging window: GPU allocated/reserved, and host RSS (the CPU targets are RSS budgets)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import psutil
import torch
from lightning.pytorch.callbacks import Callback

_GIB = float(1 << 30)


class MemoryMonitor(Callback):
    """Logs ``memory/*`` in GiB every ``log_every_n_steps`` steps and resets the CUDA peak counters."""

    def __init__(self, log_every_n_steps: int = 50) -> None:
        if log_every_n_steps < 1:
            raise ValueError("log_every_n_steps must be >= 1")
        self.log_every_n_steps = log_every_n_steps
        self._process = psutil.Process()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (batch_idx + 1) % self.log_every_n_steps:
            return
        metrics = {"memory/host_rss_gib": self._process.memory_info().rss / _GIB}
        device = pl_module.device
        if device.type == "cuda":
            metrics["memory/gpu_peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / _GIB
            metrics["memory/gpu_peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / _GIB
            torch.cuda.reset_peak_memory_stats(device)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)
        self.last_metrics = metrics

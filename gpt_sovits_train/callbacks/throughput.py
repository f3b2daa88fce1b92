"""Training speed in units that mean something for speech: samples/s, tokens/s, audio-seconds/s, and MFU on GPU."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from gpt_sovits_train.callbacks.batch_stats import batch_stats

# Dense peak FLOP/s per device for the precisions we train in (vendor data sheets, without sparsity).
_PEAK_FLOPS: dict[str, dict[str, float]] = {
    "h100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12, "tf32": 495e12},
    "h200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12, "tf32": 495e12},
    "a100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12, "tf32": 156e12},
    "l40s": {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12, "tf32": 183e12},
    "4090": {"bf16": 165e12, "fp16": 165e12, "fp32": 82.6e12, "tf32": 82.6e12},
}


def peak_flops(device_name: str, precision: str) -> float | None:
    """Peak FLOP/s of a GPU by (lower-cased) marketing name and Lightning precision string, if known."""
    name = device_name.lower()
    kind = "bf16" if "bf16" in precision else "fp16" if "16" in precision else "fp32"
    for key, table in _PEAK_FLOPS.items():
        if key in name:
            if kind == "fp32" and torch.backends.cuda.matmul.allow_tf32:
                return table["tf32"]
            return table[kind]
    return None


class ThroughputMonitor(Callback):
    """Logs ``throughput/*`` every ``log_every_n_steps`` optimizer steps, averaged over that window.

    MFU uses the standard ``6 × parameters × tokens`` training-FLOP estimate, so it is comparable across runs
    of one model, not an exact count. ``peak_flops`` overrides the built-in device table.
    """

    def __init__(self, log_every_n_steps: int = 10, peak_flops: float | None = None) -> None:
        if log_every_n_steps < 1:
            raise ValueError("log_every_n_steps must be >= 1")
        self.log_every_n_steps = log_every_n_steps
        self.peak_flops_override = peak_flops
        self._reset()

    def _reset(self) -> None:
        self._window_start: float | None = None
        self._samples = 0
        self._tokens = 0
        self._audio_seconds = 0.0
        self._batches = 0
        self._recognized = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._window_start is None:
            _synchronize(pl_module.device)
            self._window_start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        stats = batch_stats(batch)
        self._batches += 1
        if stats is not None:
            self._recognized += 1
            self._samples += stats.samples
            self._tokens += stats.tokens
            self._audio_seconds += stats.audio_seconds
        if self._batches < self.log_every_n_steps or self._window_start is None:
            return
        _synchronize(pl_module.device)
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        world = trainer.world_size
        metrics = {"throughput/batches_per_sec": self._batches / elapsed}
        if self._recognized:  # unknown batch formats report batches/s only, never a made-up zero
            metrics["throughput/samples_per_sec"] = self._samples * world / elapsed
            metrics["throughput/tokens_per_sec"] = self._tokens * world / elapsed
            metrics["throughput/audio_seconds_per_sec"] = self._audio_seconds * world / elapsed
        mfu = self._mfu(trainer, pl_module, self._tokens / elapsed)
        if mfu is not None:
            metrics["throughput/mfu"] = mfu
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)
        self.last_metrics = metrics
        self._reset()

    def _mfu(self, trainer: pl.Trainer, pl_module: pl.LightningModule, tokens_per_sec: float) -> float | None:
        if pl_module.device.type != "cuda":
            return None
        peak = self.peak_flops_override or peak_flops(torch.cuda.get_device_name(pl_module.device),
                                                       str(trainer.precision))
        if not peak:
            return None
        params = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        return 6.0 * params * tokens_per_sec / peak


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

"""Carry the random-number generators through a checkpoint, so a resumed run draws the same dropout masks and
noise as the uninterrupted one would have (Lightning saves weights, optimizers and loop counters, not RNGs).

The saved state is put back at the *first training batch* after the resume rather than at load time: creating
the epoch's data iterator draws from the global generator, and that draw happened before the checkpoint in the
uninterrupted run.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def capture_rng_states() -> dict[str, Any]:
    """Global torch (CPU + every CUDA device), NumPy and Python generator states."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_as_plain(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _numpy_state_as_plain() -> tuple:
    """NumPy's state without ndarrays, so checkpoints stay loadable with ``torch.load(weights_only=True)``."""
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return name, [int(k) for k in key], int(pos), int(has_gauss), float(cached_gaussian)


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states`; CUDA states are skipped when the device count differs."""
    torch.set_rng_state(states["torch"])
    name, key, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    random.setstate(states["python"])
    cuda_states = states.get("cuda")
    if cuda_states is not None and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


class RNGStateKeeper(Callback):
    """Saves RNG states in each checkpoint and restores them at the first training batch after a resume."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._pending is not None:
            restore_rng_states(self._pending)
            self._pending = None

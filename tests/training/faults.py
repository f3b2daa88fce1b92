"""Fault injection for resume tests: a callback that SIGKILLs its own process at a chosen step.

Real crashes (OOM killer, node loss) give no chance to clean up; ``kill -9`` from inside at an exact step makes
the test deterministic without depending on timing. Loaded by the training subprocess via ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """``kill -9`` this process once ``global_step`` reaches ``step`` (after the optimizer step, before any
    checkpoint of that step is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)

"""Loaded by training jobs through ``PYTHONPATH`` in the live tests: pace training so a signal lands mid-run.

Sleeping after each batch changes no number the run computes; it only gives the test a window in which the job
is certainly running and not yet finished.
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback


class SlowSteps(Callback):
    """Sleep ``seconds`` after every training batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)

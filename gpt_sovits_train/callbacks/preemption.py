"""Preemption: on SIGTERM (or SIGUSR1) save a resumable checkpoint at the next batch boundary, then stop.

Clusters and cloud spot instances give a process a grace period between SIGTERM and SIGKILL. Saving inside the
signal handler could capture a half-applied optimizer step, so the handler only raises a flag; the checkpoint is
written after the current batch finishes, when weights, optimizer, loop counters, data position and RNGs agree.
Every rank must take part in the save, so under DDP the flag is combined across ranks first.

Under SLURM with ``trainer=slurm`` Lightning's ``SLURMEnvironment(auto_requeue=True)`` owns SIGUSR1 (it saves an
``hpc_ckpt`` and requeues the job); this callback then handles SIGTERM only.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

log = logging.getLogger(__name__)

PREEMPTION_EXIT_CODE = 143  # 128 + SIGTERM: schedulers treat it as "killed", not "finished"


class PreemptionCheckpoint(Callback):
    """Writes ``<dirpath>/<filename>.ckpt`` after a preemption signal and asks the trainer to stop."""

    def __init__(self, dirpath: str | None = None, filename: str = "preempted",
                 signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGUSR1")) -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.signal_names = tuple(signals)
        for name in self.signal_names:
            if not hasattr(signal, name):
                raise ValueError(f"unknown signal {name!r}; use names such as SIGTERM or SIGUSR1")
        self.requested = False
        self.saved_path: str | None = None
        self._previous_handlers: dict[int, Any] = {}

    # --- signal plumbing -------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning installs its SIGTERM notifier before this hook, so we chain to it rather than replace it.
        for name in self.signal_names:
            signum = getattr(signal, name)
            if signum == signal.SIGUSR1 and _slurm_owns_sigusr1(trainer):
                continue
            previous = signal.getsignal(signum)
            self._previous_handlers[signum] = previous
            signal.signal(signum, self._make_handler(previous))

    def _make_handler(self, previous: Any):
        def handler(signum: int, frame: Any) -> None:
            self.requested = True
            if callable(previous):
                previous(signum, frame)

        return handler

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()

    # --- saving --------------------------------------------------------------------------------------------
    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        """Next to the regular checkpoints when there are any, else under ``default_root_dir/checkpoints``."""
        dirpath = self.dirpath
        if dirpath is None:
            checkpoint_cb = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)), None)
            dirpath = checkpoint_cb.dirpath if checkpoint_cb is not None and checkpoint_cb.dirpath else None
        if dirpath is None:
            dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        return Path(dirpath) / f"{self.filename}.ckpt"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        requested = self.requested or bool(getattr(trainer, "received_sigterm", False))
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested and self.saved_path is None:
            self._save(trainer)
            trainer.should_stop = True

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # The signal arrived after our batch-end hook ran: the batch is complete, so saving here is still safe.
        if isinstance(exception, SIGTERMException) and self.saved_path is None:
            self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(str(path))
        self.saved_path = str(path)
        rank_zero_info(f"preemption: saved resumable checkpoint {path} at step {trainer.global_step}; "
                       f"resume with ckpt_path={path}")


def _slurm_owns_sigusr1(trainer: pl.Trainer) -> bool:
    from lightning.fabric.plugins.environments import SLURMEnvironment

    env = trainer._accelerator_connector.cluster_environment
    return isinstance(env, SLURMEnvironment) and env.auto_requeue

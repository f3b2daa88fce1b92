"""Preemption: on SIGTERM (or SIGUSR1) save a resumable checkpoint at the next batch boundary, then stop.

Clusters and cloud spot instances give a process a grace period between SIGTERM and SIGKILL. Saving inside the
signal handler could capture a half-applied optimizer step, so the handler only raises a flag; the checkpoint is
written after the current batch finishes, when weights, optimizer, loop counters, data position and RNGs agree.
Every rank must take part in the save, so under DDP the flag is combined across ranks first.

Under SLURM with ``trainer=slurm`` (``SLURMEnvironment(auto_requeue=True)``) the same batch-boundary save goes to
Lightning's ``hpc_ckpt_<n>.ckpt`` in the run folder, which Lightning restores by itself when the job starts again;
on SIGUSR1 (the cluster's "you will be stopped" warning, ``--signal=USR1@<s>`` or ``scancel --signal=USR1``) rank 0
then runs ``scontrol requeue`` so the job comes back in the same folder and finishes its ``max_steps``. Lightning's
own SIGUSR1 handler would save *inside* the signal handler, possibly between an optimizer step and the loop
counters, so this callback replaces it for the duration of the fit. After ``scontrol requeue`` (by us or by an
administrator) SLURM sends SIGTERM, which only finds the checkpoint already written.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
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
        self.requeue_requested = False
        self.saved_path: str | None = None
        self.requeued_job: str | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._slurm = False

    # --- signal plumbing -------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning installs its SIGTERM notifier before this hook, so we chain to it rather than replace it. Its
        # SLURM SIGUSR1 handler (save inside the handler, then requeue) is replaced: we do both at a batch boundary.
        self._slurm = _slurm_requeue_enabled(trainer)
        for name in self.signal_names:
            signum = getattr(signal, name)
            previous = signal.getsignal(signum)
            self._previous_handlers[signum] = previous
            requeue = self._slurm and signum == signal.SIGUSR1
            signal.signal(signum, self._make_handler(None if requeue else previous, requeue))

    def _make_handler(self, previous: Any, requeue: bool):
        def handler(signum: int, frame: Any) -> None:
            self.requested = True
            self.requeue_requested = self.requeue_requested or requeue
            if callable(previous):
                previous(signum, frame)

        return handler

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()

    # --- saving --------------------------------------------------------------------------------------------
    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        """Under SLURM auto-requeue: Lightning's next ``hpc_ckpt_<n>.ckpt`` (restored automatically when the job
        restarts). Otherwise next to the regular checkpoints when there are any, else ``default_root_dir/checkpoints``.
        """
        if self._slurm:
            return Path(trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir))
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
        requeue = self.requeue_requested
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
            requeue = trainer.strategy.reduce_boolean_decision(requeue, all=False)
        if requested and self.saved_path is None:
            self._save(trainer)
            trainer.should_stop = True
            if requeue:
                self._requeue(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # The signal arrived after our batch-end hook ran: the batch is complete, so saving here is still safe.
        if isinstance(exception, SIGTERMException) and self.saved_path is None:
            self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(str(path))
        self.saved_path = str(path)
        how = "the requeued job resumes from it" if self._slurm else f"resume with ckpt_path={path}"
        rank_zero_info(f"preemption: saved resumable checkpoint {path} at step {trainer.global_step}; {how}")

    def _requeue(self, trainer: pl.Trainer) -> None:
        """Rank 0 puts this SLURM job back in the queue (SLURM then stops every task of it)."""
        if not trainer.is_global_zero:
            return
        job_id = slurm_job_id()
        proc = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log.error("preemption: `scontrol requeue %s` failed (%s); resume by hand from %s", job_id,
                      proc.stderr.strip(), self.saved_path)
            return
        self.requeued_job = job_id
        rank_zero_info(f"preemption: requeued SLURM job {job_id}")


def slurm_job_id() -> str:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else ``SLURM_JOB_ID``."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def _slurm_requeue_enabled(trainer: pl.Trainer) -> bool:
    from lightning.fabric.plugins.environments import SLURMEnvironment

    env = trainer._accelerator_connector.cluster_environment
    return isinstance(env, SLURMEnvironment) and env.auto_requeue and "SLURM_JOB_ID" in os.environ

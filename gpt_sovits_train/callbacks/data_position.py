"""Exact mid-epoch resume: remember how many batches of the current epoch were consumed.

A plain ``IterableDataset`` restarts its epoch from the first shard after a resume, so a job that is preempted
every few hours would see the start of the corpus over and over and the end never. This callback stores
``{"epoch", "batches_consumed"}`` in every checkpoint and, when a run resumes, hands it to the DataModule's
``load_state_dict`` so the next epoch iterator skips what was already trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class DataPositionTracker(Callback):
    """Counts consumed training batches per epoch, saves the position and restores it into the DataModule.

    ``record_keys_to``: a folder; each rank appends the utterance keys of every batch it trains on to
    ``rank<N>.txt`` there — an audit of which data each rank saw (disjointness, coverage, resume replays).
    """

    def __init__(self, record_keys_to: str | None = None) -> None:
        self.record_keys_to = Path(record_keys_to) if record_keys_to else None
        self.epoch = 0
        self.batches_consumed = 0
        self._trainer: pl.Trainer | None = None
        self._restored_epoch: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restored_epoch == trainer.current_epoch:
            return  # resumed inside this epoch: keep counting from the restored position
        self.epoch = trainer.current_epoch
        self.batches_consumed = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.epoch = trainer.current_epoch
        self.batches_consumed += 1
        if self.record_keys_to is not None:
            self._record_keys(trainer.global_rank, batch)

    def _record_keys(self, rank: int, batch: Any) -> None:
        keys = batch.get("keys", batch.get("key")) if isinstance(batch, dict) else None
        if keys is None:
            raise ValueError("record_keys_to needs batches with a 'keys' (or 'key') entry listing utterance ids")
        self.record_keys_to.mkdir(parents=True, exist_ok=True)
        with open(self.record_keys_to / f"rank{rank}.txt", "a", encoding="utf-8") as handle:
            handle.write("".join(f"{key}\n" for key in keys))

    def position(self) -> dict[str, int]:
        """Where the next batch comes from: an epoch whose last batch was consumed points at the next epoch."""
        trainer = self._trainer
        if trainer is not None and self.batches_consumed and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return {"epoch": self.epoch + 1, "batches_consumed": 0}
        return {"epoch": self.epoch, "batches_consumed": self.batches_consumed}

    def state_dict(self) -> dict[str, int]:
        return self.position()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = int(state_dict["epoch"])
        self.batches_consumed = int(state_dict["batches_consumed"])
        self._restored_epoch = self.epoch

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        state = (checkpoint.get("callbacks") or {}).get(self.state_key)
        if not state:
            return
        datamodule = trainer.datamodule
        if datamodule is None or not callable(getattr(datamodule, "load_state_dict", None)):
            log.warning("resuming without a DataModule that accepts load_state_dict: epoch %s restarts from its "
                        "first batch instead of batch %s", state["epoch"], state["batches_consumed"])
            return
        datamodule.load_state_dict({"epoch": int(state["epoch"]), "batches_consumed": int(state["batches_consumed"])})
        log.info("resuming data at epoch %s after %s batches", state["epoch"], state["batches_consumed"])

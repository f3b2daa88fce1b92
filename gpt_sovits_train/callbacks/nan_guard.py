"""Stop a diverged run early instead of burning hours on NaN weights.

One non-finite gradient (a single bad clip, an fp16 overflow) should not kill a run, so a bad step is skipped
by dropping its gradients; only ``patience`` bad steps in a row stop training, with advice on what to change.
Under ``16-mixed`` the GradScaler already skips overflowing steps, so gradients are not checked there.

Stages with manual optimization (SoVITS) skip non-finite steps themselves, before ``optimizer.step()``, where no
callback sees them; they report the loss terms that went non-finite in ``pl_module.nonfinite_terms`` and the
guard counts those steps like its own. When it stops a run it first saves ``nonfinite-step<N>.ckpt`` beside the
other checkpoints (the weights are still the last good ones: every bad update was skipped) and names the terms
and the batch's utterance keys in the error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteTrainingError(RuntimeError):
    """Raised when loss or gradients stay NaN/Inf for ``patience`` consecutive steps."""


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


def describe_batch(batch: Any, limit: int = 8) -> str:
    """The batch's utterance keys (``keys``) and its non-finite tensors, for the divergence message."""
    if not isinstance(batch, dict):
        return "n/a"
    keys = batch.get("keys") or batch.get("key") or []
    shown = ", ".join(map(str, list(keys)[:limit])) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
    bad = [name for name, value in batch.items()
           if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]
    return f"utterances [{shown or 'unknown'}]; non-finite inputs: {bad or 'none'}; fields {sorted(batch)}"


def nonfinite_gradients(module: torch.nn.Module) -> list[str]:
    """Names of parameters whose gradient holds a NaN or Inf."""
    return [name for name, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]


class NaNGuard(Callback):
    """Skips optimizer steps with non-finite gradients; raises after ``patience`` consecutive bad steps."""

    def __init__(self, patience: int = 3, check_gradients: bool = True, save_checkpoint: bool = True) -> None:
        if patience < 1:
            raise ValueError("patience must be >= 1")
        self.patience = patience
        self.check_gradients = check_gradients
        self.save_checkpoint = save_checkpoint
        self.consecutive_bad = 0
        self.skipped_steps = 0
        self.diverged_checkpoint: str | None = None
        self._bad_this_step: str | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._bad_this_step = None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if not self.check_gradients or str(trainer.precision) == "16-mixed":
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        finite = torch.stack([torch.isfinite(p.grad).all() for p in params]).all()
        if bool(finite):
            return
        for p in params:  # optimizers skip parameters without a gradient: the step becomes a no-op
            p.grad = None
        self.skipped_steps += 1
        self._bad_this_step = "gradients"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        reported = list(getattr(pl_module, "nonfinite_terms", None) or [])  # skipped inside the module
        loss = _loss_of(outputs)
        if reported:
            self.skipped_steps += 1
            self._bad_this_step = ", ".join(reported)
        elif loss is not None and not torch.isfinite(loss.detach()).all():
            if self._bad_this_step is None:  # automatic optimization stepped on a NaN loss's gradients: dropped
                self.skipped_steps += 1
            self._bad_this_step = "loss"
        if self._bad_this_step is None:
            self.consecutive_bad = 0
            return
        pl_module.log("train/skipped_nonfinite_steps", float(self.skipped_steps))
        self._raise_if_persistent(trainer, self._bad_this_step, batch)

    def _raise_if_persistent(self, trainer: pl.Trainer, what: str, batch: Any = None) -> None:
        self.consecutive_bad += 1
        if self.consecutive_bad < self.patience:
            return
        where = ""
        if self.save_checkpoint:
            folder = next((cb.dirpath for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)),
                          trainer.default_root_dir)
            self.diverged_checkpoint = str(Path(folder) / f"nonfinite-step{trainer.global_step}.ckpt")
            trainer.save_checkpoint(self.diverged_checkpoint)
            where = f" Saved the (last good) weights to {self.diverged_checkpoint}."
        raise NonFiniteTrainingError(
            f"{what} became NaN/Inf for {self.consecutive_bad} consecutive steps (global step {trainer.global_step}, "
            f"{self.skipped_steps} skipped steps in all; last batch: {describe_batch(batch)}).{where} Lower the "
            "learning rate (model.optimizer.lr), enable gradient clipping, prefer bf16-mixed over 16-mixed, check "
            "those utterances for silent/corrupt clips, then resume (ckpt_path=...)."
        )

    def state_dict(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

"""Stop a diverged run early instead of burning hours on NaN weights.

One non-finite gradient (a single bad clip, an fp16 overflow) should not kill a run, so a bad step is skipped
by dropping its gradients; only ``patience`` bad steps in a row stop training, with advice on what to change.
Under ``16-mixed`` the GradScaler already skips overflowing steps, so gradients are not checked there.
"""

from __future__ import annotations

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


def nonfinite_gradients(module: torch.nn.Module) -> list[str]:
    """Names of parameters whose gradient holds a NaN or Inf."""
    return [name for name, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]


class NaNGuard(Callback):
    """Skips optimizer steps with non-finite gradients; raises after ``patience`` consecutive bad steps."""

    def __init__(self, patience: int = 3, check_gradients: bool = True) -> None:
        if patience < 1:
            raise ValueError("patience must be >= 1")
        self.patience = patience
        self.check_gradients = check_gradients
        self.consecutive_bad = 0
        self.skipped_steps = 0
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
        loss = _loss_of(outputs)
        if loss is not None and not torch.isfinite(loss.detach()).all():
            self._bad_this_step = "loss"
        if self._bad_this_step is None:
            self.consecutive_bad = 0
            return
        self._raise_if_persistent(trainer, self._bad_this_step)

    def _raise_if_persistent(self, trainer: pl.Trainer, what: str) -> None:
        self.consecutive_bad += 1
        if self.consecutive_bad >= self.patience:
            raise NonFiniteTrainingError(
                f"{what} became NaN/Inf for {self.consecutive_bad} consecutive steps (global step "
                f"{trainer.global_step}). Lower the learning rate (model.optimizer.lr), enable gradient clipping, "
                "prefer bf16-mixed over 16-mixed, check the data for silent/corrupt clips, then resume from the "
                "last good checkpoint (ckpt_path=...)."
            )

    def state_dict(self) -> dict[str, int]:
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

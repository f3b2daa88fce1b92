"""Learning-rate schedules: v2's as its code runs them, and our warmup-cosine for the AdamW alternative.

All are ``LambdaLR`` factors, so a scheduler's state in a checkpoint is plain numbers (``last_epoch``, base
rates) and loads with ``weights_only=True``.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def v2_gpt_schedule(optimizer: torch.optim.Optimizer, later_lr: float = 0.002) -> LambdaLR:
    """v2's GPT-stage schedule as it actually runs: the optimizer's own rate for the first step, ``later_lr`` for
    every later one. Step it once after every optimizer step.

    Why not warmup + cosine: at 48b1a01 the reference's ``WarmupCosineLRSchedule.step`` computes the warmup/cosine
    value and then overwrites it with a constant 0.002 before setting it, at every call; the config's
    ``lr_init``/``lr``/``lr_end``/``warmup_steps``/``decay_steps`` never take effect. It is first called after the
    first optimizer step, so that step runs at ScaledAdam's constructor rate (0.01).
    """
    factors = [
        (lambda step, base=group["lr"]: 1.0 if step == 0 else later_lr / base) for group in optimizer.param_groups
    ]
    return LambdaLR(optimizer, factors)


def v2_sovits_schedule(optimizer: torch.optim.Optimizer, gamma: float = 0.999875, initial_decays: int = 1) -> LambdaLR:
    """v2's SoVITS schedule: exponential decay by ``gamma`` per epoch, stepped at every epoch end.

    ``s2_train.py`` steps its ``ExponentialLR`` once per epoch already done *before* training (``for _ in
    range(epoch_str)`` with ``epoch_str = 1`` on a fresh run), so its first epoch already runs at ``lr * gamma``
    and epoch ``e`` (1-based) at ``lr * gamma**e``; ``initial_decays=1`` reproduces that, 0 starts at ``lr``.
    """
    return LambdaLR(optimizer, lambda epoch: gamma ** (epoch + initial_decays))


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int = 2000,
    total_steps: int = 40000,
    start_factor: float = 1e-3,
    end_factor: float = 1e-2,
) -> LambdaLR:
    """LR x factor: linear from ``start_factor`` to 1 over ``warmup_steps``, cosine down to ``end_factor`` at
    ``total_steps``, flat afterwards (the shape v2's config describes: 1e-5 -> 1e-2 -> 1e-4 relative to a 1e-2
    peak, which its code does not run; used by the AdamW alternative)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return start_factor + (1.0 - start_factor) * step / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return end_factor + (1.0 - end_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)

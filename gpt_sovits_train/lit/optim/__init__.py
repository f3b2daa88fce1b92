"""Optimizers and learning-rate schedules of the training recipes (v2's ScaledAdam and its schedule as it runs)."""

from gpt_sovits_train.lit.optim.scaled_adam import ScaledAdam
from gpt_sovits_train.lit.optim.schedules import v2_gpt_schedule, v2_sovits_schedule, warmup_cosine

__all__ = ["ScaledAdam", "v2_gpt_schedule", "v2_sovits_schedule", "warmup_cosine"]

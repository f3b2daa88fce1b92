"""The GPT stage memorizes a few demo utterances' semantic sequences through the real ``train(cfg)`` path."""

from __future__ import annotations

import pytest

from gpt_sovits_train.training.run import train

from .conftest import compose_train, quiet_overrides, stage_overrides


@pytest.mark.slow  # over ~20 s on 2 cores
def test_tiny_gpt_memorizes_demo_utterances(demo_shards, tmp_path):
    overrides = [
        *stage_overrides("gpt", demo_shards),
        *quiet_overrides(),
        "trainer.overfit_batches=1",  # the same batch of demo utterances every step
        "trainer.max_steps=250",
        "trainer.max_epochs=-1",
        "trainer.gradient_clip_val=1.0",
        "trainer.log_every_n_steps=1",
        "data.batching.max_batch_size=2",
        "model.optimizer.lr=3e-3",
        "model.scheduler.warmup_steps=10",
        "model.scheduler.total_steps=100000",  # ~constant lr after warmup,
        "model.net.dropout=0.0",
        "callbacks.model_checkpoint.every_n_train_steps=1000",
        "trainer.check_val_every_n_epoch=100000",  # overfit_batches makes each step an epoch: no validation decode each
    ]
    result = train(compose_train(overrides, tmp_path))
    assert result["status"] == "finished" and result["global_step"] == 250
    assert result["metrics"]["train/acc_top1"] >= 0.9, result["metrics"]

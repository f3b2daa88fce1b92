"""Callback behaviour that does not need the speech models: NaN handling, batch accounting, RNG round trip."""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from gpt_sovits_train.callbacks.batch_stats import batch_stats
from gpt_sovits_train.callbacks.nan_guard import NaNGuard, NonFiniteTrainingError, nonfinite_gradients
from gpt_sovits_train.callbacks.rng_state import capture_rng_states, restore_rng_states
from gpt_sovits_train.callbacks.throughput import peak_flops


class _DivergesAfter(BoringModel):
    """Lightning's demo model whose loss turns NaN from a given step on (a diverging run)."""

    def __init__(self, nan_from_step: int) -> None:
        super().__init__()
        self.nan_from_step = nan_from_step

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if self.global_step >= self.nan_from_step:
            out["loss"] = out["loss"] * float("nan")
        return out


def _trainer(tmp_path, callbacks, max_steps=10) -> pl.Trainer:
    return pl.Trainer(default_root_dir=tmp_path, max_steps=max_steps, callbacks=callbacks, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", devices=1, limit_val_batches=0)


def test_nan_guard_skips_bad_steps_then_stops_with_advice(tmp_path):
    model = _DivergesAfter(nan_from_step=3)
    guard = NaNGuard(patience=2)
    trainer = _trainer(tmp_path, [guard])
    with pytest.raises(NonFiniteTrainingError, match="learning rate"):
        trainer.fit(model)
    assert guard.skipped_steps == 2  # the NaN gradients of both bad steps were dropped
    assert torch.isfinite(model.layer.weight).all()  # weights never saw a NaN update
    assert not nonfinite_gradients(model)


def test_nan_guard_lets_healthy_run_finish(tmp_path):
    guard = NaNGuard(patience=1)
    trainer = _trainer(tmp_path, [guard], max_steps=5)
    trainer.fit(BoringModel())
    assert trainer.global_step == 5 and guard.skipped_steps == 0


def test_batch_stats_for_both_stages():
    gpt = {"phoneme_ids_len": torch.tensor([10, 20]), "semantic_ids_len": torch.tensor([50, 25])}
    stats = batch_stats(gpt)
    assert (stats.samples, stats.tokens) == (2, 105)
    assert stats.audio_seconds == pytest.approx(75 / 25.0)
    sovits = {"ssl_lengths": torch.tensor([100, 50]), "wav_lengths": torch.tensor([64000, 32000])}
    stats = batch_stats(sovits)
    assert (stats.samples, stats.tokens) == (2, 150)
    assert stats.audio_seconds == pytest.approx(3.0)
    assert batch_stats(torch.zeros(2)) is None


def test_peak_flops_table():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16-mixed") == 989e12
    assert peak_flops("Some Unknown GPU", "bf16-mixed") is None


def test_rng_round_trip_is_weights_only_loadable(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    states = capture_rng_states()
    torch.save(states, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]

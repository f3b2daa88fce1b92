"""Mixed precision and gradient checkpointing under the stages' real Lightning loops, on CPU.

Lightning maps ``precision="16-mixed"`` on CPU to bf16, so the fp16 GradScaler path is exercised by handing the
Trainer Lightning's own ``MixedPrecision("16-mixed", "cpu")`` plugin (torch has CPU fp16 autocast and a CPU
GradScaler): the same plugin a GPU run gets, with the same unscale / skip-on-inf / update logic.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import soundfile as sf
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader

from gpt_sovits_train.data.collate import collate_sovits
from gpt_sovits_train.lit.sovits_module import SoVITSModule
from gpt_sovits_train.training.run import build, train, weights_fingerprint
from tests.helpers import DEMO

from .conftest import compose_train, quiet_overrides, stage_overrides

pytestmark = pytest.mark.slow


def _overrides(stage: str, shards, steps: int, *extra: str) -> list[str]:
    return [*stage_overrides(stage, shards), *quiet_overrides(), "debug=limit", f"trainer.max_steps={steps}",
            "trainer.limit_val_batches=0", "callbacks.model_checkpoint.every_n_train_steps=1000", *extra]


def _finite_losses(metrics: dict[str, float]) -> dict[str, float]:
    losses = {k: v for k, v in metrics.items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    return losses


@pytest.mark.parametrize("stage", ["sovits", "gpt"])
def test_bf16_mixed_trains_each_stage(stage, demo_shards, tmp_path):
    # CPU bf16 convolutions are slow: one utterance per batch and one period discriminator keep this a smoke run
    small = ["data.batching.max_batch_size=1", "model.discriminator.periods=[2]"] if stage == "sovits" else []
    overrides = _overrides(stage, demo_shards, 2, "trainer.precision=bf16-mixed", *small)
    initial = weights_fingerprint(build(compose_train(overrides, tmp_path))[1])
    result = train(compose_train(overrides, tmp_path))
    assert result["status"] == "finished" and result["global_step"] == 2
    _finite_losses(result["metrics"])
    assert result["weights_fingerprint"] != initial


def test_gradient_checkpointing_trains_through_the_trainer(demo_shards, tmp_path):
    overrides = _overrides("sovits", demo_shards, 2, "++model.net.gradient_checkpointing=true")
    cfg = compose_train(overrides, tmp_path)
    assert cfg.model.net.gradient_checkpointing
    initial = weights_fingerprint(build(cfg)[1])
    result = train(compose_train(overrides, tmp_path))
    assert result["status"] == "finished" and result["global_step"] == 2
    _finite_losses(result["metrics"])
    assert result["weights_fingerprint"] != initial


def _short_demo_clips(count: int = 2, seconds: float = 0.8) -> list[dict]:
    """Schema samples of short demo excerpts (random SSL features): CPU fp16 kernels are slow, so the fp16 tests
    keep clips just above the tiny generator's 12-frame training segment."""
    lines = [line.split("|") for line in (DEMO / "demo.list").read_text(encoding="utf-8").splitlines()][:count]
    generator = torch.Generator().manual_seed(0)
    samples = []
    for path, *_ in lines:
        audio, rate = sf.read(DEMO / path, dtype="float32")
        assert rate == 32000
        middle, half = len(audio) // 2, int(seconds * rate) // 2
        clip = torch.from_numpy(audio[middle - half : middle + half].copy())
        samples.append({"key": path, "audio": clip, "ssl": torch.randn(768, clip.numel() // 640, generator=generator),
                        "phone_ids": torch.randint(1, 100, (8,), generator=generator)})
    return samples


def _fp16_fit(demo_shards, tmp_path, scaler: torch.amp.GradScaler, steps: int):
    """Fit the tiny SoVITS module (one period discriminator) with Lightning's fp16 plugin and ``scaler`` on one
    batch of short demo clips, collated by the real ``collate_sovits``; returns (trainer, module, start)."""
    cfg = compose_train(_overrides("sovits", demo_shards, steps, "model.discriminator.periods=[2]"), tmp_path)
    module = build(cfg)[1]
    assert isinstance(module, SoVITSModule)
    start = {name: p.detach().clone() for name, p in module.named_parameters()}
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=0,
                         plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(_short_demo_clips(), batch_size=2, collate_fn=collate_sovits)
    trainer.fit(module, train_dataloaders=loader)
    return trainer, module, start


def test_fp16_scaler_path_steps_and_updates(demo_shards, tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    trainer, module, start = _fp16_fit(demo_shards, tmp_path, scaler, 2)
    assert trainer.global_step == 2  # one discriminator + one generator update
    _finite_losses({k: float(v) for k, v in trainer.callback_metrics.items()})
    changed = [n for n, p in module.named_parameters() if p.requires_grad and not torch.equal(p.detach(), start[n])]
    assert any(n.startswith("net.") for n in changed) and any(n.startswith("discriminator.") for n in changed)
    assert "train/skipped_nonfinite_grad_gen" not in trainer.callback_metrics


def test_fp16_overflow_is_skipped_by_the_scaler_and_logged(demo_shards, tmp_path):
    """An absurd initial scale overflows the fp16 gradients: every update is skipped (weights untouched), the
    scale backs off each time, and the skips are logged — the guard defers to the scaler instead of fighting it."""
    init_scale = 2.0**120
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    trainer, module, start = _fp16_fit(demo_shards, tmp_path, scaler, 2)
    for name, param in module.named_parameters():
        assert torch.equal(param.detach(), start[name]), f"{name} changed although its step was skipped"
    # v2 updates its GradScaler once per batch, after both networks stepped: one batch, both overflowed, one back-off
    assert scaler.get_scale() == init_scale / 2
    metrics = trainer.callback_metrics
    assert float(metrics["train/skipped_nonfinite_grad_disc"]) == 1.0
    assert float(metrics["train/skipped_nonfinite_grad_gen"]) == 1.0

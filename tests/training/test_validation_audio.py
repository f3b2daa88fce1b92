"""SoVITS validation resynthesizes demo utterances: distances are logged, audio and mel plots are kept."""

from __future__ import annotations

import math

import pytest

from gpt_sovits_train.inference.ai_metadata import is_marked_ai_generated
from gpt_sovits_train.training.run import train

from .conftest import compose_train, quiet_overrides, stage_overrides


@pytest.mark.slow
@pytest.mark.parametrize("logger", ["csv", "wandb"])
def test_sovits_validation_logs_distances_audio_and_plots(logger, demo_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [
        *stage_overrides("sovits", demo_shards),
        *quiet_overrides(),
        "debug=limit",
        "trainer.max_steps=8",  # one epoch of 4 batches = 8 optimizer steps, then validation
        f"logger={logger}",
    ]
    result = train(compose_train(overrides, tmp_path))
    metrics = result["metrics"]
    assert math.isfinite(metrics["val/mcd_db"]) and metrics["val/mcd_db"] > 0
    assert math.isfinite(metrics["val/mrstft"]) and metrics["val/mrstft"] > 0
    if logger == "csv":
        wavs = sorted((tmp_path / "samples").glob("step*/*_generated.wav"))
        pngs = sorted((tmp_path / "samples").glob("step*/*_mel.png"))
        assert len(wavs) == len(pngs) == 2
        assert all(is_marked_ai_generated(path) for path in wavs)
    else:
        media = list((tmp_path / "wandb").glob("offline-run-*/files/media/audio/val_audio/*"))
        images = list((tmp_path / "wandb").glob("offline-run-*/files/media/images/val_mel/*"))
        assert media and images

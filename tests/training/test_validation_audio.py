"""Validation you can listen to: SoVITS resynthesizes demo utterances (distances, audio, mel plots); the GPT
stage decodes free-running (length ratio, EOS rate) and voices the result through a SoVITS checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpt_sovits_train.audio.ai_metadata import is_marked_ai_generated
from gpt_sovits_train.training.run import train

from .conftest import compose_train, quiet_overrides, stage_overrides

REPO = Path(__file__).resolve().parents[2]
CONF, DEMO = REPO / "conf", REPO / "data" / "demo"


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


@pytest.mark.slow
def test_gpt_validation_decodes_free_running_and_voices_it(demo_shards, tmp_path):
    """Free-running greedy decodes are measured (hallucination watch) and voiced through a SoVITS checkpoint."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict
    from safetensors.torch import save_file

    net_cfg = OmegaConf.load(CONF / "model" / "sovits" / "tiny.yaml")
    sovits = instantiate(net_cfg)
    checkpoint = tmp_path / "sovits.safetensors"
    save_file({k: v.contiguous() for k, v in sovits.state_dict().items()}, str(checkpoint))
    overrides = [*stage_overrides("gpt", demo_shards), *quiet_overrides(), "debug=limit", "trainer.max_steps=4",
                 "logger=csv"]
    cfg = compose_train(overrides, tmp_path)
    with open_dict(cfg):
        cfg.model.validation_vocoder = {
            "_target_": "gpt_sovits_train.inference.vocoder.ReferenceVocoder",
            "checkpoint": str(checkpoint),
            "reference_audio": str(DEMO / "ava" / "ava_000.flac"),
            "net": OmegaConf.to_container(net_cfg),
        }
    result = train(cfg)
    ratio = result["metrics"]["val/gen_length_ratio"]
    assert math.isfinite(ratio) and ratio > 0
    assert 0.0 <= result["metrics"]["val/gen_eos_rate"] <= 1.0
    wavs = sorted((tmp_path / "samples").glob("step*/*_generated.wav"))
    assert wavs and all(is_marked_ai_generated(path) for path in wavs)
    assert len(list((tmp_path / "samples").glob("step*/*_mel.png"))) == len(wavs)

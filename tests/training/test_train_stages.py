"""Each stage trains for real through ``train(cfg)`` on demo shards, in one process, and logs to W&B offline."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.distributed as dist

from gpt_sovits_train.training.run import build, train, weights_fingerprint

from .conftest import compose_train, stage_overrides, stages


@pytest.mark.parametrize("stage", ["gpt", pytest.param("sovits", marks=pytest.mark.slow)])  # sovits: ~15 s
def test_short_cpu_run_of_each_stage(stage, demo_shards, tmp_path):
    overrides = [*stage_overrides(stage, demo_shards), "debug=limit", "trainer.max_steps=6",
                 "callbacks.model_checkpoint.every_n_train_steps=4", "logger=csv"]
    # max_steps counts optimizer steps: 6 GPT updates, or 3 generator + 3 discriminator updates for SoVITS;
    # debug=limit makes epochs of 4 batches, so both stages stop inside an epoch
    initial = weights_fingerprint(build(compose_train(overrides, tmp_path))[1])
    result = train(compose_train(overrides, tmp_path))

    assert result["status"] == "finished"
    assert result["global_step"] == 6
    assert result["strategy"] == "SingleDeviceStrategy" and result["world_size"] == 1
    assert not (dist.is_available() and dist.is_initialized())  # one device: no process group was created
    assert result["weights_fingerprint"] != initial  # the optimizer really changed the weights
    ckpt = torch.load(result["last_checkpoint"], weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 6  # last.ckpt holds the final weights even though 6 is not a multiple of 4
    assert ckpt["callbacks"]["DataPositionTracker"]["batches_consumed"] >= 1
    assert all(math.isfinite(v) for v in result["metrics"].values())
    assert result["metrics"].get("throughput/samples_per_sec", 0) > 0
    assert (tmp_path / "resolved_config.yaml").is_file() and (tmp_path / "train_result.json").is_file()


@pytest.mark.parametrize("stage", stages("gpt"))
def test_wandb_offline_run_directory_holds_the_run(stage, demo_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [*stage_overrides(stage, demo_shards), "debug=limit", "trainer.max_steps=2", "logger=wandb",
                 "task_name=wandb_test"]
    result = train(compose_train(overrides, tmp_path))
    assert result["status"] == "finished"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run under {tmp_path / 'wandb'}, found {runs}"
    run_dir = runs[0]
    records = list(run_dir.glob("run-*.wandb"))
    assert len(records) == 1
    # The offline record log (what `wandb sync` uploads) holds the resolved config and the logged metrics. The
    # wandb-core service process writes it asynchronously, so give it a moment after wandb.finish().
    expected = (b"wandb_test", b"max_steps", b"throughput/batches_per_sec")
    deadline = time.monotonic() + 60
    while not all(item in records[0].read_bytes() for item in expected) and time.monotonic() < deadline:
        time.sleep(0.5)
    data = records[0].read_bytes()
    for item in expected:
        assert item in data, f"{item!r} missing from the offline W&B run"

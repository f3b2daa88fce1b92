"""The SLURM launcher plumbing (hydra-submitit) runs a real training job through submitit's local executor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import REPO, quiet_overrides, stage_overrides, stages

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", stages("gpt"))
def test_submitit_local_launcher_runs_a_training_job(stage, demo_shards, tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "gpt_sovits_train.cli.train", "-m", "hydra/launcher=local",
               f"hydra.sweep.dir={sweep_dir}", *stage_overrides(stage, demo_shards), *quiet_overrides(),
               "trainer.max_steps=2", "trainer.limit_val_batches=0", "~callbacks.best_checkpoint"]
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((sweep_dir / "0" / "train_result.json").read_text())
    assert result["status"] == "finished" and result["global_step"] == 2
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl")), "the job did not go through submitit"

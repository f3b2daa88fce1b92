"""Crash and preemption recovery: kill -9 then resume equals an uninterrupted run; SIGTERM leaves a resumable
checkpoint. Both run ``gst-train`` as a subprocess, the way a cluster job runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import REPO, quiet_overrides, run_train_cli, stage_overrides, stages

pytestmark = pytest.mark.slow

FAULTS_DIR = str(Path(__file__).resolve().parent)
TOTAL_STEPS = 10


def _common(stage: str, shards: Path) -> list[str]:
    return [*stage_overrides(stage, shards), *quiet_overrides(), f"trainer.max_steps={TOTAL_STEPS}",
            "trainer.limit_val_batches=0", "~callbacks.best_checkpoint", "seed=7",
            "callbacks.model_checkpoint.every_n_train_steps=2", "trainer.deterministic=true"]


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("stage", stages("gpt", "sovits"))
def test_kill9_then_resume_matches_uninterrupted_run(stage, demo_shards, tmp_path):
    common = _common(stage, demo_shards)
    proc, reference = run_train_cli(common, tmp_path / "uninterrupted")
    assert proc.returncode == 0, proc.stderr[-4000:]

    crashed_dir = tmp_path / "crashed"
    env = {"PYTHONPATH": os.pathsep.join([FAULTS_DIR, os.environ.get("PYTHONPATH", "")])}
    proc, _ = run_train_cli([*common, "+callbacks.kill._target_=faults.KillAtStep", "+callbacks.kill.step=5"],
                            crashed_dir, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
    last = crashed_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4  # the step-5 checkpoint never happened

    # ckpt_path=last resumes from the newest "last" checkpoint of the run folder: an older one beside it is ignored.
    stale = crashed_dir / "checkpoints" / "last-stale.ckpt"
    shutil.copy(last, stale)
    os.utime(stale, (last.stat().st_mtime - 3600, last.stat().st_mtime - 3600))
    proc, resumed = run_train_cli([*common, "ckpt_path=last"], crashed_dir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Restoring states from the checkpoint path at {last}" in proc.stdout + proc.stderr, proc.stderr[-4000:]
    assert resumed["global_step"] == reference["global_step"] == TOTAL_STEPS  # max_steps is a total

    expected, actual = _weights(reference["last_checkpoint"]), _weights(resumed["last_checkpoint"])
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
@pytest.mark.parametrize("stage", stages("gpt"))
def test_preemption_signal_writes_resumable_checkpoint(stage, signum, demo_shards, tmp_path):
    """SIGTERM (scheduler kill) and SIGUSR1 (SLURM's advance warning) both save preempted.ckpt at the next batch
    boundary and exit with the preemption code; the run resumes from it."""
    run_dir = tmp_path / "preempted"
    command = [sys.executable, "-m", "gpt_sovits_train.cli.train", f"hydra.run.dir={run_dir}",
               *_common(stage, demo_shards), "trainer.max_steps=100000", "trainer.max_epochs=-1"]
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (run_dir / "checkpoints" / "last.ckpt").exists():  # training is under way
            assert proc.poll() is None, proc.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "training did not reach its first checkpoint"
            time.sleep(0.2)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, output[-4000:]
    preempted = run_dir / "checkpoints" / "preempted.ckpt"
    state = torch.load(preempted, weights_only=False)
    assert state["global_step"] >= 2 and "optimizer_states" in state and "DataPositionTracker" in state["callbacks"]

    step = state["global_step"]
    proc, resumed = run_train_cli([*_common(stage, demo_shards), f"trainer.max_steps={step + 2}",
                                   f"ckpt_path={preempted}"], tmp_path / "resumed")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert resumed["global_step"] == step + 2

"""gst-train's surface: the grid sweep preset runs, user mistakes end in one line with exit 2, one run folder holds
one training at a time, and a NaN storm stops the SoVITS stage with a diagnosis and a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gpt_sovits_train.training.run import train
from gpt_sovits_train.training.run_lock import RunFolderInUseError, run_folder_lock

from .conftest import REPO, compose_train, quiet_overrides, run_train_cli, stage_overrides


def _one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-3000:]


@pytest.mark.slow  # 20 s on 2 loaded cores (CLI subprocess or training run)
def test_missing_shards_fail_before_anything_is_built(tmp_path: Path) -> None:
    proc, result = run_train_cli(["model=gpt", f"data.shards={tmp_path / 'no_such_shards'}"], tmp_path / "run")
    _one_line_error(proc, "data.shards=")
    assert result is None and not (tmp_path / "run" / "resolved_config.yaml").exists()


@pytest.mark.slow  # 23 s + 27 s of demo shards on 2 loaded cores (CLI subprocess or training run)
def test_resume_from_missing_file_is_one_line(demo_shards: Path, tmp_path: Path) -> None:
    proc, result = run_train_cli([*stage_overrides("gpt", demo_shards), f"ckpt_path={tmp_path / 'gone.ckpt'}"],
                                 tmp_path / "run")
    _one_line_error(proc, "ckpt_path=")
    assert result is None and not (tmp_path / "run" / "resolved_config.yaml").exists()


def without_batch_cap(overrides: list[str]) -> list[str]:
    """A command-line value for a swept key replaces the sweep's list, so the grid's own key must not be set."""
    return [o for o in overrides if not o.startswith("data.batching.max_batch_size=")]


@pytest.mark.slow
def test_lr_batch_grid_sweep_runs_and_collects_results(demo_shards: Path, tmp_path: Path) -> None:
    """The documented sweep preset (it used to name data.batch_size, a key that does not exist): 2 x 2 tiny jobs,
    every job's result gathered into sweep_results.json, ranked by the metric gst-train returns."""
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "gpt_sovits_train.cli.train", "-m", "hparams_search=lr_batch_grid",
               f"hydra.sweep.dir={sweep}", *without_batch_cap(stage_overrides("gpt", demo_shards)), *quiet_overrides(),
               "trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
               "trainer.limit_val_batches=1"]
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count("Seed set to") == 4  # Lightning's INFO lines once per job, not twice
    table = json.loads((sweep / "sweep_results.json").read_text())
    assert table["metric"] == "val/loss" and table["jobs_without_result"] == []
    swept = ("data.batching.max_batch_size=", "model.optimizer.lr=")  # each job also lists the command's overrides
    grid = {tuple(sorted(o for o in job["overrides"] if o.startswith(swept))) for job in table["jobs"]}
    assert grid == {(f"data.batching.max_batch_size={b}", f"model.optimizer.lr={lr}")
                    for lr in ("0.0001", "0.001") for b in (8, 16)}  # as Hydra writes the swept floats
    objectives = [job["objective"] for job in table["jobs"]]
    assert all(isinstance(v, float) for v in objectives) and objectives == sorted(objectives)


@pytest.mark.slow
def test_second_training_into_a_busy_run_folder_is_refused(demo_shards: Path, tmp_path: Path) -> None:
    """Two real gst-train processes, one run folder: the second stops at once (exit 2); the lock dies with the
    first process, so after a kill -9 the folder is usable again."""
    run = tmp_path / "run"
    first_cmd = [sys.executable, "-m", "gpt_sovits_train.cli.train", f"hydra.run.dir={run}",
                 *stage_overrides("gpt", demo_shards), *quiet_overrides(), "trainer.max_steps=100000",
                 "trainer.max_epochs=-1"]
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(first_cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while not (run / "resolved_config.yaml").exists():  # written inside the lock, after the model is built
            assert first.poll() is None, first.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.5)
        proc, _ = run_train_cli([*stage_overrides("gpt", demo_shards), *quiet_overrides()], run)
        _one_line_error(proc, "in use")
        with pytest.raises(RunFolderInUseError), run_folder_lock(run):
            pass
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    with run_folder_lock(run):  # the holder died: the lock went with it
        pass


def test_nan_storm_stops_the_sovits_stage(demo_shards: Path, tmp_path: Path) -> None:
    """The SoVITS module skips non-finite steps before optimizer.step(), where the NaN guard never looked: a run
    whose generator loss is always NaN used to train to the end. Now the guard counts those skips and, after
    `patience` in a row, saves a checkpoint and stops, naming the loss term and the utterances."""
    overrides = [*stage_overrides("sovits", demo_shards), "logger=csv", "trainer.max_steps=40",
                 "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "model.c_mel=nan",
                 "callbacks.nan_guard.patience=2"]
    result = train(compose_train(overrides, tmp_path))
    assert result["status"] == "diverged", result
    assert result["skipped_nonfinite_steps"] == 2
    assert "loss_mel" in result["error"] and "utterances [" in result["error"]
    checkpoint = Path(result["diverged_checkpoint"])
    assert checkpoint.is_file() and checkpoint.name.startswith("nonfinite-step")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())  # bad updates skipped

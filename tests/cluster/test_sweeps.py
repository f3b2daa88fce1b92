"""Optuna sweeps run real trials: ``hparams_search=optuna`` minimizes the ``val/loss`` each training run returns,
in-process and as SLURM jobs on the fixture's cluster."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from .conftest import LIVE_TIMINGS
from .test_slurm_train import finish, job_ids, job_log, launch, slurm_cpu_overrides

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("live_timer")]

TRIALS = 3


def optuna_overrides(shards: Path) -> list[str]:
    """Three tiny GPT trials, each 2 steps and one validation batch, so the objective is a real val/loss."""
    return [
        "hparams_search=optuna",
        f"hydra.sweeper.n_trials={TRIALS}",
        "hydra.sweeper.n_jobs=3",
        "model/gpt@model.net=tiny",
        f"data.shards={shards}",
        "data.num_workers=0",
        "data.batching.max_batch_size=2",
        "data.val_batching.max_batch_size=2",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
        "~callbacks.best_checkpoint",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "trainer.val_check_interval=2",
        "model.num_val_generations=0",
    ]


def check_study(sweep_dir: Path) -> None:
    """Every trial trained and returned its own val/loss; the study's best is the smallest of them."""
    results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/train_result.json"))]
    assert len(results) == TRIALS
    losses = [r["metrics"]["val/loss"] for r in results]
    assert all(r["status"] == "finished" and r["global_step"] == 2 for r in results)
    assert len(set(losses)) == TRIALS  # a different learning rate gives a different loss: not a constant
    study = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert study["name"] == "optuna" and study["best_value"] == pytest.approx(min(losses))


def test_optuna_sweep_minimizes_the_returned_val_loss(slurm_cluster, cluster_shards, tmp_path):
    sweep_dir = tmp_path / "optuna_local"
    started = time.monotonic()
    proc = launch(slurm_cluster, sweep_dir, optuna_overrides(cluster_shards))
    output = finish(proc, slurm_cluster, 900)
    LIVE_TIMINGS.append(("optuna sweep, 3 trials in-process", time.monotonic() - started))
    assert proc.returncode == 0, output[-4000:]
    check_study(sweep_dir)


def test_optuna_trials_run_as_slurm_jobs(slurm_cluster, cluster_shards, tmp_path):
    sweep_dir = tmp_path / "optuna_slurm"
    started = time.monotonic()
    proc = launch(slurm_cluster, sweep_dir, [*optuna_overrides(cluster_shards), *slurm_cpu_overrides()])
    output = finish(proc, slurm_cluster, 900)
    LIVE_TIMINGS.append(("optuna sweep, 3 trials as SLURM jobs", time.monotonic() - started))
    assert proc.returncode == 0, output[-4000:] + job_log(sweep_dir)
    jobs = [job for job in job_ids(sweep_dir) if "_" in job]  # the array's tasks, not its parent folder
    assert len(jobs) == TRIALS, jobs
    for job in jobs:
        assert slurm_cluster.wait_for_job(job, 120) == "COMPLETED"
    check_study(sweep_dir)

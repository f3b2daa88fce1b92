"""Live SLURM: ``gst-train -m hydra/launcher=slurm trainer=slurm`` submits real jobs to the fixture's cluster.

One uninterrupted job, then the same job preempted the way a cluster does it (``scancel --signal=USR1``): it
checkpoints at a batch boundary, requeues itself, comes back in the same folder, resumes, and ends with the same
weights as the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training.conftest import REPO, quiet_overrides

from .conftest import LIVE_TIMINGS
from .slurm import LocalSlurm

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("live_timer")]

TOTAL_STEPS = 12
CLUSTER_DIR = str(Path(__file__).resolve().parent)


def slurm_cpu_overrides() -> list[str]:
    """``trainer=slurm`` on the fixture's CPU-only node: one task, gloo instead of NCCL (what docs/slurm.md shows)."""
    return [
        "hydra/launcher=slurm",
        "trainer=slurm",
        "hydra.launcher.gpus_per_node=0",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=10",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.strategy.process_group_backend=gloo",
    ]


def tiny_gpt_overrides(shards: Path) -> list[str]:
    return [
        "model=gpt",
        "model/gpt@model.net=tiny",
        f"data.shards={shards}",
        "data.num_workers=0",
        "data.batching.max_batch_size=2",
        "data.val_batching.max_batch_size=2",
        *quiet_overrides(),
        f"trainer.max_steps={TOTAL_STEPS}",
        "trainer.limit_val_batches=0",
        "~callbacks.best_checkpoint",
        "seed=7",
        "callbacks.model_checkpoint.every_n_train_steps=2",
        "trainer.deterministic=true",
    ]


def launch(cluster: LocalSlurm, sweep_dir: Path, overrides: list[str]) -> subprocess.Popen:
    """Start ``gst-train -m`` (this interpreter, this tree on PYTHONPATH) against the fixture's cluster."""
    command = [sys.executable, "-m", "gpt_sovits_train.cli.train", "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]
    env = {
        **os.environ,
        **cluster.env,
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), CLUSTER_DIR, os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, cluster: LocalSlurm, timeout: float) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"gst-train -m did not return in {timeout:.0f} s\n{output[-4000:]}\n{cluster.logs()}")
    return output


def job_ids(sweep_dir: Path) -> list[str]:
    """SLURM job ids submitit used (its log folders are named after them)."""
    return sorted(p.name for p in (sweep_dir / ".submitit").glob("*") if p.is_dir() and p.name[0].isdigit())


def job_log(sweep_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted((sweep_dir / ".submitit").rglob("*.err")))


def weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(slurm_cluster, cluster_shards, tmp_path_factory) -> dict:
    sweep_dir = tmp_path_factory.mktemp("slurm_uninterrupted")
    started = time.monotonic()
    proc = launch(slurm_cluster, sweep_dir, [*slurm_cpu_overrides(), *tiny_gpt_overrides(cluster_shards)])
    output = finish(proc, slurm_cluster, 900)
    LIVE_TIMINGS.append(("uninterrupted SLURM training job (submit to results)", time.monotonic() - started))
    assert proc.returncode == 0, output[-4000:] + job_log(sweep_dir)
    return {"sweep_dir": sweep_dir, "result": json.loads((sweep_dir / "0" / "train_result.json").read_text())}


def test_training_job_runs_on_slurm(uninterrupted, slurm_cluster):
    sweep_dir, result = uninterrupted["sweep_dir"], uninterrupted["result"]
    assert result["status"] == "finished" and result["global_step"] == TOTAL_STEPS
    assert result["strategy"] == "RendezvousDDPStrategy" and result["world_size"] == 1
    (job,) = job_ids(sweep_dir)
    assert slurm_cluster.wait_for_job(job, 120) == "COMPLETED"  # SLURM ran it, not a local process
    assert "SLURMEnvironment" in (sweep_dir / "0" / "resolved_config.yaml").read_text()


def test_usr1_preemption_requeues_and_resumes_to_the_same_weights(
    uninterrupted, slurm_cluster, cluster_shards, tmp_path
):
    sweep_dir = tmp_path / "sweep"
    run_dir = sweep_dir / "0"
    overrides = [
        *slurm_cpu_overrides(),
        *tiny_gpt_overrides(cluster_shards),
        "+callbacks.pace._target_=faults.SlowSteps",
        "+callbacks.pace.seconds=0.5",
    ]
    proc = launch(slurm_cluster, sweep_dir, overrides)
    deadline = time.monotonic() + 600
    while not (run_dir / "checkpoints" / "last.ckpt").exists():  # the job is running and has taken steps
        assert proc.poll() is None, proc.stdout.read()[-4000:] + job_log(sweep_dir)
        assert time.monotonic() < deadline, "the job never reached its first checkpoint\n" + slurm_cluster.logs()
        time.sleep(0.2)
    (job,) = job_ids(sweep_dir)
    slurm_cluster.run("scancel", "--signal=USR1", job)
    output = finish(proc, slurm_cluster, 900)
    assert proc.returncode == 0, output[-4000:] + job_log(sweep_dir)

    assert slurm_cluster.wait_for_job(job, 120) == "COMPLETED"
    shown = slurm_cluster.run("scontrol", "show", "job", job).stdout
    assert "Restarts=1" in shown, shown  # requeued once, by the job itself
    (hpc,) = run_dir.glob("hpc_ckpt_*.ckpt")
    saved_step = torch.load(hpc, map_location="cpu", weights_only=False)["global_step"]
    assert 2 <= saved_step < TOTAL_STEPS  # saved mid-run, at a batch boundary
    result = json.loads((run_dir / "train_result.json").read_text())
    reference = uninterrupted["result"]
    assert result["status"] == "finished" and result["global_step"] == TOTAL_STEPS
    expected, actual = weights(reference["last_checkpoint"]), weights(result["last_checkpoint"])
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)

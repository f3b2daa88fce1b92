"""The pretraining recipes end to end at smoke scale: a few demo clips laid out like LibriTTS-R
(``<subset>/<speaker>/<chapter>/<speaker>_<chapter>_<n>.wav`` + ``.normalized.txt``), prepared by a SLURM array of
``gst-prepare`` partitions, then ``experiment=pretrain_gpt`` and ``experiment=pretrain_sovits`` each trained for a
few optimizer steps with the tiny networks on CPU (everything else — budgets, schedules, checkpointing — as the
recipe says)."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from training.conftest import REPO, quiet_overrides, run_train_cli

from tests.helpers import DEMO

from .conftest import LIVE_TIMINGS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("live_timer")]

PER_SPEAKER = 4
SPEAKERS = {"ava": "19", "bo": "26"}  # demo speaker -> LibriTTS-style numeric id


def libritts_layout(root: Path) -> Path:
    """``root/train-clean-100/<id>/<chapter>/<id>_<chapter>_<n>.wav`` with LibriTTS-R's transcript files."""
    subset = root / "train-clean-100"
    taken: dict[str, int] = {}
    for line in (DEMO / "demo.list").read_text(encoding="utf-8").splitlines():
        audio, speaker, language, text = line.split("|")
        if language != "en" or taken.get(speaker, 0) >= PER_SPEAKER:
            continue
        n = taken[speaker] = taken.get(speaker, 0) + 1
        speaker_id, chapter = SPEAKERS[speaker], "198"
        stem = subset / speaker_id / chapter / f"{speaker_id}_{chapter}_{n:06d}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        data, rate = sf.read(DEMO / audio)
        sf.write(stem.with_suffix(".wav"), data, rate)
        stem.with_suffix(".normalized.txt").write_text(text, encoding="utf-8")
    return subset


@pytest.fixture(scope="module")
def pretrain_shards(slurm_cluster, cluster_shards, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("libritts_r")
    subset = libritts_layout(root / "LibriTTS_R")
    shards = root / "shards"
    random_models = cluster_shards.parent / "random_models"
    task = shlex.join(
        [
            sys.executable,
            "-m",
            "gpt_sovits_train.cli.prepare",
            f"input.path={subset}",
            "input.language=en",
            f"output_dir={shards}",
            "prepare/features@features=random_init",
            f"random_models={random_models}",
            "progress=false",
            "shards.utterances_per_chunk=2",
            "num_partitions=2",
        ]
    )
    started = time.monotonic()
    submitted = slurm_cluster.run(
        "sbatch",
        "--parsable",
        "--wait",
        "--array=0-1",
        "--cpus-per-task=1",
        f"--output={root}/prepare_%a.log",
        f"--chdir={REPO}",
        "--wrap",
        f"{task} partition=$SLURM_ARRAY_TASK_ID",
        check=False,
        timeout=900,
    )
    LIVE_TIMINGS.append(
        ("pretrain recipe: LibriTTS-R layout prepared by a 2-task SLURM array", time.monotonic() - started)
    )
    logs = "\n".join(p.read_text() for p in sorted(root.glob("prepare_*.log")))
    assert submitted.returncode == 0 and (shards / "manifest.json").is_file(), submitted.stderr + logs
    return shards


@pytest.mark.parametrize("stage", ["gpt", "sovits"])
def test_pretrain_recipe_runs_end_to_end(stage, pretrain_shards, tmp_path):
    small = ["model.discriminator.max_channels=64"] if stage == "sovits" else []
    overrides = [
        f"experiment=pretrain_{stage}",
        f"model/{stage}@model.net=tiny",
        *small,
        "trainer=cpu",
        f"data.shards={pretrain_shards}",
        "data.num_workers=0",
        "data.pin_memory=false",
        "data.batching.max_batch_size=2",
        "data.val_batching.max_batch_size=2",
        *quiet_overrides(),
        "trainer.max_steps=4",  # SoVITS counts 2 optimizer steps (G, D) per batch
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "~callbacks.audio_samples",
        "~callbacks.best_checkpoint",
    ]
    if stage == "gpt":
        overrides.append("model.num_val_generations=0")
    proc, result = run_train_cli(overrides, tmp_path / "run", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert result["status"] == "finished" and result["global_step"] == 4
    assert "val/loss" in result["metrics"] or any(k.startswith("val/") for k in result["metrics"])
    assert Path(result["last_checkpoint"]).is_file()
    shutil.rmtree(tmp_path / "run" / "checkpoints", ignore_errors=True)

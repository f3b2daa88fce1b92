"""Live SLURM: a job array of ``gst-prepare`` partitions writes the same dataset as one process."""

from __future__ import annotations

import os
import shlex
import sys
import tarfile
import time
from pathlib import Path

import pytest
from training.conftest import REPO

from tests.helpers import demo_subset

from .conftest import LIVE_TIMINGS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("live_timer")]

PARTITIONS = 3


def prepare_args(corpus: Path, random_models: Path, output_dir: Path) -> list[str]:
    return [
        "prepare/features@features=random_init",
        f"random_models={random_models}",
        f"input.path={corpus}",
        f"output_dir={output_dir}",
        "progress=false",
        "split.val_min_per_speaker=1",
        "shards.utterances_per_chunk=2",
    ]


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def test_prepare_array_matches_one_process(slurm_cluster, cluster_shards, tmp_path):
    import subprocess

    random_models = cluster_shards.parent / "random_models"
    corpus = demo_subset(tmp_path / "corpus.list", per_speaker=4)
    env = {
        **os.environ,
        **slurm_cluster.env,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    single = tmp_path / "single"
    proc = subprocess.run(
        [sys.executable, "-m", "gpt_sovits_train.cli.prepare", *prepare_args(corpus, random_models, single)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    arrayed = tmp_path / "array"
    task = shlex.join(
        [
            sys.executable,
            "-m",
            "gpt_sovits_train.cli.prepare",
            *prepare_args(corpus, random_models, arrayed),
            f"num_partitions={PARTITIONS}",
        ]
    )
    started = time.monotonic()
    submitted = slurm_cluster.run(
        "sbatch",
        "--parsable",
        "--wait",
        f"--array=0-{PARTITIONS - 1}",
        "--cpus-per-task=1",
        f"--output={tmp_path}/prepare_%A_%a.log",
        f"--chdir={REPO}",
        "--wrap",
        f"{task} partition=$SLURM_ARRAY_TASK_ID",
        check=False,
        timeout=900,
    )
    LIVE_TIMINGS.append((f"gst-prepare as a {PARTITIONS}-task SLURM array", time.monotonic() - started))
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("prepare_*.log")))
    assert submitted.returncode == 0, submitted.stderr + logs + slurm_cluster.logs()
    assert len(list(tmp_path.glob("prepare_*.log"))) == PARTITIONS  # every partition ran as its own task

    for name in ("train.index.jsonl", "val.index.jsonl", "skipped.jsonl"):
        assert (arrayed / name).read_text() == (single / name).read_text(), name
    shards = sorted(p.relative_to(single) for p in single.rglob("*.tar"))
    assert shards and shards == sorted(p.relative_to(arrayed) for p in arrayed.rglob("*.tar"))
    for shard in shards:
        assert tar_members(arrayed / shard) == tar_members(single / shard), shard

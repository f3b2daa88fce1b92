"""Datasets in object storage: training reads ``s3://`` shards, manifest and index from a real S3-compatible
server (moto's server mode on 127.0.0.1), resumes from them, and a bucket that vanishes mid-epoch is an error that
names the shard, not a hang. Credentials come from the environment and never reach the run folder. The S3 server
is the ``s3_server`` fixture of tests/conftest.py (gst-prepare's upload tests use it too)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from training.conftest import quiet_overrides, run_train_cli

from .conftest import LIVE_TIMINGS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("live_timer")]

BUCKET = "gst-data"


def upload(local: Path, url: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL_S3"]}, skip_instance_cache=True)
    fs.mkdir(BUCKET)
    fs.put(str(local) + "/", url.removeprefix("s3://"), recursive=True)


def test_train_from_s3_and_resume(s3_server, cluster_shards, tmp_path):
    url = f"s3://{BUCKET}/shards"
    upload(cluster_shards, url)
    common = [
        "model=gpt",
        "model/gpt@model.net=tiny",
        f"data.shards={url}",
        "trainer=cpu",
        "data.num_workers=0",
        "data.batching.max_batch_size=2",
        "data.val_batching.max_batch_size=2",
        *quiet_overrides(),
        "trainer.limit_val_batches=0",
        "~callbacks.best_checkpoint",
        "seed=7",
        "callbacks.model_checkpoint.every_n_train_steps=2",
    ]
    started = time.monotonic()
    proc, first = run_train_cli([*common, "trainer.max_steps=4"], tmp_path / "run", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert first["global_step"] == 4
    proc, resumed = run_train_cli(
        [*common, "trainer.max_steps=9", f"ckpt_path={first['last_checkpoint']}"], tmp_path / "run", timeout=900
    )
    LIVE_TIMINGS.append(("train 4 steps from s3:// then resume to 9", time.monotonic() - started))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert resumed["global_step"] == 9  # crossed into the second epoch (7 batches each): every shard read twice
    secret = s3_server["AWS_SECRET_ACCESS_KEY"].encode()
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"the secret key leaked into {path}"


def test_a_bucket_that_disappears_mid_epoch_names_the_shard(s3_server, cluster_shards):
    import s3fs

    from gpt_sovits_train.data.datamodule import GPTDataModule
    from gpt_sovits_train.data.storage import ShardReadError

    url = f"s3://{BUCKET}/shards"
    upload(cluster_shards, url)
    datamodule = GPTDataModule(url, batching={"max_batch_size": 2, "shuffle": False}, num_workers=0, seed=7)
    batches = iter(datamodule.train_dataloader())
    next(batches)  # the first shard is open and read
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL_S3"]}, skip_instance_cache=True)
    fs.rm(BUCKET, recursive=True)
    started = time.monotonic()
    with pytest.raises(ShardReadError, match=r"s3://gst-data/shards/train/.*\.tar"):
        for _ in batches:
            pass
    LIVE_TIMINGS.append(("time to the error after the bucket vanished", time.monotonic() - started))

"""Faults while reading shards during training: a stalled source, a corrupt sample, over-long items.

Each fault must end in one clear message (or a count) naming what to look at, never a silent hang or drop.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from gpt_sovits_train.data.datamodule import SoVITSDataModule
from gpt_sovits_train.data.schema import CorruptSampleError
from gpt_sovits_train.data.storage import ShardReadError

SMALL = {"max_tokens": 1200, "max_batch_size": 4, "max_item_length": 1000, "window": 8}


def test_a_stalled_pipe_source_times_out_naming_the_shard_and_command(demo_shards, tmp_path):
    pid_file = tmp_path / "stalled.pid"
    # The shell writes its pid, then becomes `sleep` (exec): that pid is the stalled process we must reap.
    template = f"pipe:echo $$ > {pid_file}; exec sleep 3600 # {{shard}}"
    module = SoVITSDataModule(
        str(demo_shards), batching=SMALL, num_workers=0, shard_url_template=template, shard_read_timeout_s=1.0
    )
    module.setup()
    with pytest.raises(ShardReadError) as raised:
        next(iter(module.train_dataloader()))
    message = str(raised.value)
    assert re.search(r"train/train-\d+-\d+\.tar", message) and "exec sleep 3600" in message
    assert "stalled" in message and "shard_read_timeout_s" in message
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and waited for: not running, not a zombie
        os.kill(pid, 0)


def test_a_pipe_source_that_fails_names_the_shard_and_exit_status(demo_shards):
    module = SoVITSDataModule(
        str(demo_shards), batching=SMALL, num_workers=0, shard_url_template="pipe:cat {root}/{shard}.missing"
    )
    module.setup()
    with pytest.raises(ShardReadError, match=r"train/train-\d+-\d+\.tar.*exit status 1"):
        next(iter(module.train_dataloader()))


def test_a_slow_but_moving_pipe_source_is_not_cut_off(demo_shards):
    # Bytes keep arriving (a slow link): the timeout is for silence, not for the whole shard.
    template = "pipe:sleep 0.5; cat {root}/{shard}"
    local = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0, seed=4)
    piped = SoVITSDataModule(
        str(demo_shards), batching=SMALL, num_workers=0, seed=4, shard_url_template=template, shard_read_timeout_s=5.0
    )
    local.setup()
    piped.setup()
    assert [b["keys"] for b in piped.train_dataloader()] == [b["keys"] for b in local.train_dataloader()]


def corrupt_audio_of(shard: Path, key: str) -> None:
    """Rewrite ``shard`` with ``key``'s FLAC bytes scrambled after the first third (header intact, frames not)."""
    with tarfile.open(shard) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for info, data in members:
            if info.name == f"{key}.audio.flac":
                cut = len(data) // 3
                data = data[:cut] + bytes(byte ^ 0xA5 for byte in data[cut:])
            tar.addfile(info, io.BytesIO(data))


def test_a_corrupt_sample_names_its_shard_and_key_and_what_to_do(demo_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(demo_shards, shards)
    record = json.loads((shards / "train.index.jsonl").read_text().splitlines()[0])
    corrupt_audio_of(shards / record["shard"], record["key"])
    module = SoVITSDataModule(str(shards), batching=SMALL, num_workers=0)
    module.setup()
    with pytest.raises(CorruptSampleError) as raised:
        list(module.train_dataloader())
    message = str(raised.value)
    assert record["shard"] in message and record["key"] in message and "lost sync" in message
    assert "gst-prepare" in message

"""Faults while reading shards during training: a stalled source, a corrupt sample, over-long items.

Each fault must end in one clear message (or a count) naming what to look at, never a silent hang or drop.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import tarfile
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from gpt_sovits_train.constants import HOP, MAX_CLIP_SECONDS, MAX_PHONES_PER_SECOND, SAMPLE_RATE
from gpt_sovits_train.data.datamodule import GPTDataModule, SoVITSDataModule, gpt_length, sovits_length
from gpt_sovits_train.data.schema import CorruptSampleError
from gpt_sovits_train.data.storage import ShardReadError
from gpt_sovits_train.data.utterance import AudioRules

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


def test_the_gpt_loader_never_decodes_the_waveform(demo_shards, tmp_path):
    """The GPT stage reads phonemes, BERT and tokens only: with every FLAC member scrambled its batches are the same
    as from the intact shards (the SoVITS loader, which needs the waveform, stops on the first one, see above)."""
    shards = tmp_path / "shards"
    shutil.copytree(demo_shards, shards)
    for line in (shards / "train.index.jsonl").read_text().splitlines():
        record = json.loads(line)
        corrupt_audio_of(shards / record["shard"], record["key"])
    batching = {**SMALL, "max_tokens": 800, "max_item_length": 400}
    intact, scrambled = (GPTDataModule(str(path), batching=batching, num_workers=0) for path in (demo_shards, shards))
    for module in (intact, scrambled):
        module.setup()
    expected, produced = list(intact.train_dataloader()), list(scrambled.train_dataloader())
    assert len(produced) == len(expected) > 0
    for a, b in zip(expected, produced, strict=True):
        assert a["keys"] == b["keys"] and "audio" not in b
        assert all(torch.equal(a[name], b[name]) for name in a if torch.is_tensor(a[name]))


REPO_ROOT = Path(__file__).resolve().parents[2]


def shipped_batching(stage: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "data" / f"{stage}.yaml").batching)


def test_training_takes_every_clip_prepare_accepts():
    """One duration policy: the longest clip gst-prepare keeps fits both stages' shipped length caps."""
    prepare_audio = OmegaConf.load(REPO_ROOT / "conf" / "prepare.yaml").audio
    assert prepare_audio.max_seconds == AudioRules().max_seconds == MAX_CLIP_SECONDS
    assert prepare_audio.max_phones_per_second == AudioRules().max_phones_per_second == MAX_PHONES_PER_SECOND
    longest = {
        "ssl_frames": int(MAX_CLIP_SECONDS * SAMPLE_RATE / HOP),
        "phones": int(MAX_CLIP_SECONDS * MAX_PHONES_PER_SECOND),
        "semantic": None,
    }
    sovits = SoVITSDataModule("unused", batching=shipped_batching("sovits"))
    gpt = GPTDataModule("unused", batching=shipped_batching("gpt"))
    assert sovits_length(longest) <= sovits.batching.max_item_length
    assert gpt_length(longest) <= gpt.batching.max_item_length


class KeyRecorder(pl.LightningModule):
    """Records the samples each epoch trained on; one parameter so the optimizer has something to step."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[str]] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(batch["keys"])
        return (self.weight * batch["ssl"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_items_over_the_length_cap_are_counted_and_reported_every_epoch(demo_shards, tmp_path, caplog):
    records = [json.loads(line) for line in (demo_shards / "train.index.jsonl").read_text().splitlines()]
    cap = sorted(r["ssl_frames"] for r in records)[len(records) // 2]
    too_long = sorted(r["key"] for r in records if r["ssl_frames"] > cap)
    assert too_long
    module = SoVITSDataModule(str(demo_shards), batching={**SMALL, "max_item_length": cap}, num_workers=0)
    model = KeyRecorder()
    logger = CSVLogger(tmp_path, name="run", version=0)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
    )
    with caplog.at_level(logging.WARNING, logger="gpt_sovits_train.data.datamodule"):
        trainer.fit(model, datamodule=module)
    for epoch in (0, 1):
        assert not set(model.seen[epoch]) & set(too_long)
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(lines) == 2 and all(f"{len(too_long)} of {len(records)} train items" in line for line in lines)
    with open(tmp_path / "run" / "version_0" / "metrics.csv") as handle:
        logged = [row["data/train_left_out"] for row in csv.DictReader(handle) if row.get("data/train_left_out")]
    assert [float(value) for value in logged] == [len(too_long)] * 2

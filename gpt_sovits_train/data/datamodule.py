"""Lightning DataModules for the two stages, reading prepared WebDataset shards.

Reading: the epoch plan (``batching.plan_epoch``) decides batches from the prepare index; each DataLoader
worker streams this rank's shards in plan order through a ``webdataset`` pipeline (local paths or any URL
webdataset opens, e.g. ``pipe:aws s3 cp ... -``), decodes only the samples of its own batches, and emits a
batch as soon as its samples have arrived. Worker ``w`` owns batches ``w, w+W, w+2W...`` of the plan, which
is exactly the order in which the DataLoader collects from its workers, so the stream of batches the
trainer sees is the plan itself: deterministic for (seed, epoch, rank, world_size), and resumable mid-epoch
by dropping the first N batches.

Faults end in one message naming what to look at: a ``pipe:`` source silent for ``shard_read_timeout_s`` (a stuck
download) or failing raises ``storage.ShardReadError`` with the shard and the command; a damaged sample raises
``schema.CorruptSampleError`` with the shard and the key. Items over the length cap (by default derived from
``constants.MAX_CLIP_SECONDS``, so every clip gst-prepare keeps is trained on) are counted and reported per epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_expander

from gpt_sovits_train.constants import HOP, MAX_CLIP_SECONDS, MAX_PHONES_PER_SECOND, SAMPLE_RATE, SEMANTIC_HZ
from gpt_sovits_train.data import storage
from gpt_sovits_train.data.batching import BatchingConfig, Record, plan_epoch, too_long
from gpt_sovits_train.data.collate import TOKEN_SOURCES, collate_gpt, collate_sovits
from gpt_sovits_train.data.schema import decode_sample

log = logging.getLogger(__name__)


def load_index(dataset_dir: str | Path, split: str) -> tuple[dict[str, Any], list[Record]]:
    """Manifest and the split's per-sample index (written by prepare); ``dataset_dir`` may be an fsspec URL."""
    root = dataset_dir if storage.is_url(dataset_dir) else Path(dataset_dir).expanduser()
    manifest_path = storage.join(root, "manifest.json")
    if not storage.exists(manifest_path):
        raise FileNotFoundError(f"{manifest_path} not found: run gst-prepare with output_dir={root} first")
    manifest = storage.read_json(manifest_path)
    index_path = storage.join(root, manifest["splits"][split]["index"])
    records = [json.loads(line) for line in storage.read_text(index_path).splitlines() if line.strip()]
    return manifest, records


#: Shard names as prepare writes them (``train-000000.tar``, optionally in sub-folders). A manifest is data that
#: may come with a downloaded dataset, and its names are pasted into ``pipe:`` shell commands: nothing else passes.
SHARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


def shard_url(root: str | Path, template: str | None, shard: str) -> str:
    """Where to read a shard: ``root/shard`` (a path or an ``s3://`` URL), or ``template`` with
    ``{shard}``/``{root}`` filled in (e.g. ``pipe:aws s3 cp s3://bucket/demo/{shard} -``). Refuses shard names
    that could escape the dataset folder or inject shell syntax into a ``pipe:`` template."""
    if not SHARD_NAME.fullmatch(shard) or ".." in shard.split("/"):
        raise ValueError(f"refused shard name {shard!r} from the dataset manifest: names may only hold letters, "
                         "digits, '_', '-', '.' and '/' (re-run gst-prepare to write a clean manifest)")
    return template.format(shard=shard, root=str(root)) if template else storage.join(root, shard)


def sovits_length(record: Record) -> int:
    """SoVITS cost grows with frames (SSL, spectrogram and waveform all scale with them)."""
    return int(record["ssl_frames"])


def gpt_length(record: Record) -> int:
    """GPT cost grows with phonemes + semantic tokens (25 Hz: half the SSL frames when not stored)."""
    semantic = record.get("semantic")
    return int(record["phones"]) + int(semantic if semantic is not None else record["ssl_frames"] // 2)


def gpt_codec_length(record: Record) -> int:
    """GPT cost with EnCodec content tokens: phonemes + 25 Hz tokens (about half the 50 Hz SSL frames)."""
    return int(record["phones"]) + -(-int(record["ssl_frames"]) // 2)


class PlannedShardDataset(IterableDataset):
    """Yields collated batches of one rank for one epoch following the epoch plan."""

    def __init__(
        self,
        records: list[Record],
        shard_url: Callable[[str], str],
        length_of: Callable[[Record], int],
        collate: Callable[[list[dict[str, Any]]], Any],
        batching: BatchingConfig,
        seed: int,
        read_timeout_s: float = storage.DEFAULT_READ_TIMEOUT_S,
        with_audio: bool = True,
    ) -> None:
        self.records = records
        self.with_audio = with_audio
        self.read_timeout_s = read_timeout_s
        self.shard_url = shard_url
        self.length_of = length_of
        self.collate = collate
        self.batching = batching
        self.seed = 0 if seed is None else seed
        self.epoch = 0
        self.rank = 0
        self.world_size = 1
        self.skip_batches = 0

    def set_position(self, epoch: int, rank: int, world_size: int, skip_batches: int = 0) -> None:
        self.epoch, self.rank, self.world_size, self.skip_batches = epoch, rank, world_size, skip_batches

    def plan(self) -> list[list[Record]]:
        """This rank's remaining batches for the current position."""
        batches = plan_epoch(
            self.records, self.length_of, self.batching, self.seed, self.epoch, self.rank, self.world_size
        )
        return batches[self.skip_batches :]

    def full_length(self, epoch: int, rank: int, world_size: int) -> int:
        """Batches of the whole epoch (a resumed epoch yields fewer; Lightning counts the skipped ones as done)."""
        plan = plan_epoch(self.records, self.length_of, self.batching, self.seed, epoch, rank, world_size)
        return len(plan)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = self.plan()[worker::workers]
        if not mine:
            return
        needed = {record["key"]: position for position, batch in enumerate(mine) for record in batch}
        shards = list(dict.fromkeys(record["shard"] for batch in mine for record in batch))
        streams = _open_streams([self.shard_url(shard) for shard in shards], self.read_timeout_s)
        pipeline = group_by_keys(tar_file_expander(streams))
        arrived: dict[str, dict[str, Any]] = {}
        next_batch = 0
        for raw in _raising(pipeline):
            if raw["__key__"] not in needed:
                continue  # another worker's or rank's sample: skipped without decoding
            arrived[raw["__key__"]] = decode_sample(raw, self.with_audio)
            while next_batch < len(mine) and all(r["key"] in arrived for r in mine[next_batch]):
                yield self.collate([arrived.pop(r["key"]) for r in mine[next_batch]])
                next_batch += 1
        if next_batch < len(mine):
            missing = [r["key"] for batch in mine[next_batch:] for r in batch if r["key"] not in arrived]
            raise RuntimeError(f"{len(missing)} planned samples were not found in their shards, e.g. {missing[:3]}; "
                               "the shards do not match the index (re-run prepare with overwrite=true)")


def _open_streams(urls: list[str], read_timeout_s: float) -> Iterator[dict[str, Any]]:
    """One open stream per shard, closed (its ``pipe:`` command stopped and reaped) before the next opens."""
    for url in urls:
        with storage.open_shard(url, read_timeout_s) as stream:
            yield {"url": url, "stream": stream}


def _raising(pipeline: Any) -> Iterator[dict[str, Any]]:
    """webdataset reports a shard that cannot be opened with the URL; keep that message as the error."""
    try:
        yield from pipeline
    except storage.ShardReadError:
        raise
    except OSError as error:
        raise storage.ShardReadError(f"reading shards failed: {error}") from error


class PlannedLoader(DataLoader):
    """DataLoader that positions its dataset (epoch, rank, skip) in the main process before each epoch."""

    def __init__(
        self,
        dataset: PlannedShardDataset,
        position: Callable[[bool], tuple[int, int, int, int]],
        resume: Callable[[dict[str, Any]], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, batch_size=None, **kwargs)
        self.position = position
        self.resume = resume
        self.epoch = 0
        self.consumed = 0
        self.started = False

    # Lightning treats a loader with these two methods as resumable and stops warning about mid-epoch resume;
    # both go through the DataModule, so restoring via the loader and via the DataModule is the same thing.
    def state_dict(self) -> dict[str, int]:
        if not self.started:  # saved before this loader's first batch: where it would start
            epoch, _, _, skip = self.position(True)
            return {"epoch": epoch, "batches_consumed": skip}
        return {"epoch": self.epoch, "batches_consumed": self.consumed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.resume is not None:
            self.resume(state_dict)

    def __iter__(self) -> Iterator[Any]:
        epoch, rank, world_size, skip = self.position(False)
        self.dataset.set_position(epoch, rank, world_size, skip)
        self.epoch, self.consumed, self.started = epoch, skip, True
        for batch in super().__iter__():
            self.consumed += 1
            yield batch

    def __len__(self) -> int:
        epoch, rank, world_size, _ = self.position(True)
        return self.dataset.full_length(epoch, rank, world_size)


class ShardDataModule(pl.LightningDataModule):
    """Shared logic; subclasses pick the length measure and the collate function."""

    def __init__(
        self,
        shards: str,
        batching: dict[str, Any] | BatchingConfig | None = None,
        val_batching: dict[str, Any] | BatchingConfig | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        seed: int | None = 1234,
        shard_url_template: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        shard_read_timeout_s: float = storage.DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        super().__init__()
        if shard_read_timeout_s <= 0:
            raise ValueError(f"data.shard_read_timeout_s must be positive, got {shard_read_timeout_s}")
        self.shard_read_timeout_s = float(shard_read_timeout_s)
        self.dataset_dir: str | Path = shards if storage.is_url(shards) else Path(shards).expanduser()
        self.batching = self._capped(batching)
        self.val_batching = dataclasses.replace(self._capped(val_batching), shuffle=False)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = 0 if seed is None else seed
        self.shard_url_template = shard_url_template
        self._rank, self._world_size = rank, world_size
        self.manifest: dict[str, Any] | None = None
        self.records: dict[str, list[Record]] = {}
        self._epoch = 0
        self._resume: dict[str, int] | None = None
        self._train_loader: PlannedLoader | None = None

    #: What the length measure counts (for messages).
    length_unit = "length units"
    #: Whether batches need the waveform (decoding FLAC is most of a loader's work; the GPT stage never reads it).
    reads_audio = True

    # -- subclass hooks: module-level callables, so datasets pickle into spawned workers without the DataModule
    def length_function(self) -> Callable[[Record], int]:
        raise NotImplementedError

    def policy_max_item_length(self) -> int:
        """The length of the longest item gst-prepare accepts (``constants.MAX_CLIP_SECONDS``): the cap used
        when ``max_item_length`` is null, so training takes every clip prepare kept."""
        raise NotImplementedError

    def _capped(self, batching: dict[str, Any] | BatchingConfig | None) -> BatchingConfig:
        config = batching if isinstance(batching, BatchingConfig) else BatchingConfig(**(batching or {}))
        if config.max_item_length is None:
            config = dataclasses.replace(config, max_item_length=self.policy_max_item_length())
        return config

    def collate_function(self) -> Callable[[list[dict[str, Any]]], Any]:
        raise NotImplementedError

    # -- setup
    def setup(self, stage: str | None = None) -> None:
        if self.records:
            return
        for split in ("train", "val"):
            self.manifest, self.records[split] = load_index(self.dataset_dir, split)

    def distributed_position(self) -> tuple[int, int]:
        if self._rank is not None:
            return self._rank, self._world_size or 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return 0, 1

    def _train_position(self, peek: bool) -> tuple[int, int, int, int]:
        """(epoch, rank, world_size, batches to skip) for the next pass; ``peek`` leaves the state untouched."""
        trainer = self.trainer
        epoch = trainer.current_epoch if trainer is not None else self._epoch
        skip = 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            skip = self._resume["batches_consumed"]
            if not peek:
                self._resume = None
        if trainer is None and not peek:
            self._epoch += 1  # standalone use: each pass over the loader is the next epoch
        return (epoch, *self.distributed_position(), skip)

    def _dataset(self, split: str, batching: BatchingConfig) -> PlannedShardDataset:
        self.setup()
        if not self.records[split]:
            raise ValueError(f"the {split} split of {self.dataset_dir} is empty; re-run prepare with a val_fraction")
        url = functools.partial(shard_url, self.dataset_dir, self.shard_url_template)
        return PlannedShardDataset(self.records[split], url, self.length_function(), self.collate_function(),
                                   batching, self.seed, self.shard_read_timeout_s, self.reads_audio)

    def report_left_out(self, split: str, batching: BatchingConfig) -> int:
        """Count the ``split`` items the plan leaves out for length; log a line and the metric
        ``data/<split>_left_out`` (every epoch for train, as the loader is rebuilt each epoch)."""
        length_of = self.length_function()
        left_out = [record for record in self.records[split] if too_long(record, length_of, batching)]
        trainer = self.trainer
        epoch = trainer.current_epoch if trainer is not None else self._epoch
        if left_out:
            longest = max(left_out, key=length_of)
            log.warning(
                "epoch %d: %d of %d %s items are longer than max_item_length=%d %s and are left out (longest: "
                "%s, %d); raise data.%s.max_item_length (and max_tokens) if memory allows, or set it to null "
                "to take every clip gst-prepare accepts",
                epoch, len(left_out), len(self.records[split]), split, batching.max_item_length, self.length_unit,
                longest["key"], length_of(longest), "batching" if split == "train" else "val_batching",
            )  # fmt: skip
        if trainer is not None:
            for logger in trainer.loggers:
                logger.log_metrics({f"data/{split}_left_out": float(len(left_out))}, step=trainer.global_step)
        return len(left_out)

    def _loader(
        self,
        dataset: PlannedShardDataset,
        position: Callable[[bool], tuple[int, int, int, int]],
        resume: Callable[[dict[str, Any]], None] | None = None,
    ) -> PlannedLoader:
        return PlannedLoader(dataset, position, resume, num_workers=self.num_workers, pin_memory=self.pin_memory,
                             persistent_workers=False)

    def train_dataloader(self) -> PlannedLoader:
        trainer = self.trainer
        if trainer is not None and trainer.reload_dataloaders_every_n_epochs != 1:
            # Dynamic batching gives each epoch its own batch count; Lightning reads len() only when it
            # (re)loads the loader, and would cut an epoch with more batches short. Reloading is cheap here.
            log.info("setting trainer.reload_dataloaders_every_n_epochs=1 so every epoch's batch count is exact")
            trainer.reload_dataloaders_every_n_epochs = 1
        dataset = self._dataset("train", self.batching)
        self.report_left_out("train", self.batching)
        self._train_loader = self._loader(dataset, self._train_position, self.load_state_dict)
        return self._train_loader

    def val_dataloader(self) -> PlannedLoader:
        self.report_left_out("val", self.val_batching)
        return self._loader(self._dataset("val", self.val_batching), lambda peek: (0, *self.distributed_position(), 0))

    # -- exact resume
    def state_dict(self) -> dict[str, int]:
        loader = self._train_loader
        if loader is None:
            return {"epoch": self._epoch, "batches_consumed": 0}
        return loader.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume inside an epoch: the next pass over that epoch skips ``batches_consumed`` batches."""
        self._resume = {"epoch": int(state_dict["epoch"]), "batches_consumed": int(state_dict["batches_consumed"])}
        self._epoch = int(state_dict["epoch"])


class SoVITSDataModule(ShardDataModule):
    """Batches of SSL features, spectrograms, waveforms and phonemes (``collate_sovits``)."""

    length_unit = "SSL frames (50 Hz)"

    def length_function(self) -> Callable[[Record], int]:
        return sovits_length

    def policy_max_item_length(self) -> int:
        return math.ceil(MAX_CLIP_SECONDS * SAMPLE_RATE / HOP)

    def collate_function(self) -> Callable[[list[dict[str, Any]]], Any]:
        return collate_sovits


class GPTDataModule(ShardDataModule):
    """Batches of phonemes, BERT features and semantic ids (``collate_gpt``); the waveform is never decoded.

    Semantic ids come from the samples; when prepare did not store them, ``semantic_extractor`` (a callable
    SSL ``[768, T]`` → codes ``[T/2]``, e.g. ``LatentCodeExtractor`` around a trained SoVITS model) makes them
    on the fly in the loader workers. ``token_source="encodec"`` models EnCodec content tokens instead
    (``features.codec.codec_content_tokens`` of the stored codes), the GPT half of the EnCodec preset pair.
    """

    def __init__(self, *args: Any, semantic_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 token_source: str = "semantic", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if token_source not in TOKEN_SOURCES:
            raise ValueError(f"token_source must be one of {TOKEN_SOURCES}, got {token_source!r}")
        self.semantic_extractor = semantic_extractor
        self.token_source = token_source

    length_unit = "phonemes + 25 Hz tokens"
    reads_audio = False

    def policy_max_item_length(self) -> int:
        return math.ceil(MAX_CLIP_SECONDS * (SEMANTIC_HZ + MAX_PHONES_PER_SECOND))

    def length_function(self) -> Callable[[Record], int]:
        # EnCodec content tokens are 25 Hz like semantic ones: half the SSL frames (the stored semantic count
        # would be the other token stream's).
        return gpt_length if self.token_source == "semantic" else gpt_codec_length

    def collate_function(self) -> Callable[[list[dict[str, Any]]], Any]:
        return functools.partial(
            collate_gpt, semantic_extractor=self.semantic_extractor, token_source=self.token_source
        )

"""Data preparation: corpus → cleaned audio + text + features → WebDataset shards + manifest + skip report.

Layout of ``output_dir``::

    train/<chunk>-000.tar ...   shards (a chunk may roll over into -001... when it passes max_shard_bytes)
    val/<chunk>-000.tar ...
    train.index.jsonl           one line per sample: key, shard, lengths (what the DataModules batch by)
    manifest.json               counts, hours, per-speaker stats, feature versions, config hash, split
    skipped.jsonl               every input left out, with its reason
    .state/                     config hash + one ``<chunk>.done.json`` per finished chunk (resume)

Why chunks: inputs are cut into fixed, deterministic chunks before any work starts. A chunk is the unit of
resume (a finished chunk is never redone), of parallelism (a pool of workers takes chunks) and of scale-out
(``num_partitions``/``partition``: partition *p* takes chunks with ``index % num_partitions == p``, so N SLURM
array jobs can run ``prepare partition=$SLURM_ARRAY_TASK_ID num_partitions=N`` against one shared folder).
The run that finds every chunk done writes the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import webdataset as wds
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gpt_sovits_train.constants import HOP
from gpt_sovits_train.data.schema import SCHEMA_VERSION, encode_sample
from gpt_sovits_train.data.sources import Skip, Utterance, count_by_reason, read_corpus
from gpt_sovits_train.data.utterance import AudioRules, Extractors, assign_keys, process_utterance

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


class DatasetExistsError(RuntimeError):
    """The output folder already holds a finished (or differently configured) dataset."""


class NoValidSamplesError(RuntimeError):
    """Every input was skipped; the message counts the reasons."""


@dataclass(frozen=True)
class Chunk:
    """A fixed slice of one split's inputs; ``name`` is also the shard file prefix."""

    split: str
    index: int
    keys: tuple[str, ...]
    utterances: tuple[Utterance, ...]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"


# ---------------------------------------------------------------- planning


def split_assignment(utterances: list[Utterance], keys: list[str], cfg: DictConfig) -> dict[str, str]:
    """Key → split. Per speaker, a stable hash order picks ``val_fraction`` (at least ``val_min_per_speaker``,
    never every utterance of a speaker) so that adding speakers later does not reshuffle existing ones."""
    by_speaker: dict[str, list[str]] = {}
    for utterance, key in zip(utterances, keys):
        by_speaker.setdefault(utterance.speaker, []).append(key)
    assignment = {}
    for speaker_keys in by_speaker.values():
        ranked = sorted(speaker_keys, key=lambda k: hashlib.sha1(f"{cfg.seed}:{k}".encode()).hexdigest())
        wanted = max(int(cfg.val_min_per_speaker), round(float(cfg.val_fraction) * len(ranked)))
        wanted = min(wanted, len(ranked) - 1, int(cfg.val_max_per_speaker))
        val = set(ranked[: max(wanted, 0)])
        assignment.update({key: "val" if key in val else "train" for key in speaker_keys})
    return assignment


def plan_chunks(utterances: list[Utterance], keys: list[str], split_of: dict[str, str], size: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for split in SPLITS:
        members = sorted((key, utt) for key, utt in zip(keys, utterances) if split_of[key] == split)
        for start in range(0, len(members), size):
            part = members[start : start + size]
            chunk_keys = tuple(key for key, _ in part)
            chunk_utts = tuple(utt for _, utt in part)
            chunks.append(Chunk(split, start // size, chunk_keys, chunk_utts))
    return chunks


def config_hash(cfg: DictConfig) -> str:
    """Hash of everything that changes shard content (not workers/partitions/overwrite)."""
    relevant = {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("input", "audio", "features")}
    relevant["split"] = OmegaConf.to_container(cfg.split, resolve=True)
    relevant["shards"] = OmegaConf.to_container(cfg.shards, resolve=True)
    relevant["schema_version"] = SCHEMA_VERSION
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- output folder state


def _done_path(output_dir: Path, chunk: Chunk) -> Path:
    return output_dir / ".state" / f"{chunk.name}.done.json"


def _write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def claim_output_dir(output_dir: Path, digest: str, overwrite: bool) -> None:
    """Refuse to clobber a finished dataset or mix two configs in one folder unless ``overwrite=true``."""
    manifest = output_dir / "manifest.json"
    state = output_dir / ".state" / "config.json"
    if overwrite:
        for name in (*SPLITS, ".state"):
            shutil.rmtree(output_dir / name, ignore_errors=True)
        for name in ("manifest.json", "skipped.jsonl", *(f"{split}.index.jsonl" for split in SPLITS)):
            (output_dir / name).unlink(missing_ok=True)
    elif manifest.is_file():
        raise DatasetExistsError(
            f"{output_dir} already holds a finished dataset (manifest.json); "
            "pass overwrite=true to rebuild it or choose another output_dir"
        )
    elif state.is_file():
        previous = json.loads(state.read_text())["config_hash"]
        if previous != digest:
            raise DatasetExistsError(
                f"{output_dir} holds a partial dataset made with another config (hash {previous}, now {digest}); "
                "pass overwrite=true to start over or use the original config to resume"
            )
    if not state.is_file():
        _write_json_atomic(state, {"config_hash": digest})


# ---------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def build_extractors(features: DictConfig | dict) -> Extractors:
    """Instantiate every configured extractor (``_target_`` entries; ``null`` disables one)."""
    features = OmegaConf.create(features) if isinstance(features, dict) else features
    built = {}
    versions = {}
    for name in ("ssl", "bert", "speaker", "codec", "semantic"):
        spec = features.get(name)
        built[name] = instantiate(spec) if spec is not None else None
        if built[name] is not None:
            versions[name] = f"{getattr(built[name], 'version', type(built[name]).__name__)}:{spec.get('model', '')}"
    if built["ssl"] is None:
        raise ValueError("features.ssl must be configured: every sample needs SSL features")
    return Extractors(**built, store_float16=bool(features.get("store_float16", True)), versions=versions)


def _init_worker(features: dict, audio: dict, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["extractors"] = build_extractors(features)
    _WORKER["rules"] = AudioRules(**audio)


def _post_command_hook(command: str | None, output_dir: str) -> Callable[[str], None] | None:
    """Run ``command`` (``{path}``/``{shard}`` filled in) on every finished tar, e.g. to upload it to object
    storage; a failing command stops the chunk, so it is redone on the next run instead of silently missing."""
    if not command:
        return None

    def run(path: str) -> None:
        shard = Path(path).relative_to(output_dir).as_posix()
        subprocess.run(command.format(path=path, shard=shard), shell=True, check=True)

    return run


def process_chunk(
    chunk: Chunk,
    output_dir: str,
    max_shard_bytes: int,
    on_item: Callable[[], None] | None = None,
    post_command: str | None = None,
) -> dict[str, Any]:
    """Write one chunk's shards and its done-marker; returns the marker's content."""
    extractors, rules = _WORKER["extractors"], _WORKER["rules"]
    split_dir = Path(output_dir) / chunk.split
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in split_dir.glob(f"{chunk.name}-*.tar"):  # from an interrupted earlier attempt
        stale.unlink()
    records, skips = [], []
    writer = None
    try:
        for utterance, key in zip(chunk.utterances, chunk.keys):
            result = process_utterance(utterance, key, rules, extractors)
            if on_item is not None:
                on_item()
            if isinstance(result, Skip):
                skips.append(result.as_dict())
                continue
            if writer is None:
                pattern = str(split_dir / f"{chunk.name}-%03d.tar")
                writer = wds.ShardWriter(pattern, maxsize=max_shard_bytes, maxcount=10**9, verbose=0,
                                         post=_post_command_hook(post_command, output_dir))
            writer.write(encode_sample(result))
            records.append(_index_record(result, Path(writer.fname).relative_to(output_dir).as_posix()))
    finally:
        if writer is not None:
            writer.close()
    marker = {
        "chunk": chunk.name,
        "split": chunk.split,
        "records": records,
        "skipped": skips,
        "feature_versions": extractors.versions,
    }
    _write_json_atomic(_done_path(Path(output_dir), chunk), marker)
    return marker


def _index_record(sample: dict[str, Any], shard: str) -> dict[str, Any]:
    """What the DataModules need to plan batches without opening shards."""
    meta = sample["meta"]
    return {
        "key": sample["key"],
        "shard": shard,
        "speaker": meta["speaker"],
        "language": meta["language"],
        "duration": meta["duration"],
        "phones": int(sample["phone_ids"].numel()),
        "ssl_frames": int(sample["ssl"].shape[-1]),
        "spec_frames": int(sample["audio"].numel() // HOP),
        "semantic": int(sample["semantic"].numel()) if sample.get("semantic") is not None else None,
        "notes": meta.get("notes", []),
    }


def _run_chunks(
    chunks: list[Chunk], cfg: DictConfig, output_dir: Path, on_item: Callable[[], None]
) -> Iterator[dict[str, Any]]:
    """Markers of finished chunks; in-process runs report every utterance, pools every chunk."""
    features = OmegaConf.to_container(cfg.features, resolve=True)
    audio = OmegaConf.to_container(cfg.audio, resolve=True)
    workers = max(1, int(cfg.num_workers))
    threads = max(1, int(cfg.threads_per_worker))
    max_bytes = int(cfg.shards.max_shard_bytes)
    post_command = cfg.shards.get("post_command")
    if workers == 1:
        _init_worker(features, audio, threads)
        for chunk in chunks:
            yield process_chunk(chunk, str(output_dir), max_bytes, on_item, post_command)
        return
    context = multiprocessing.get_context("spawn")  # CUDA and tokenizers do not survive fork
    with context.Pool(workers, initializer=_init_worker, initargs=(features, audio, threads)) as pool:
        jobs = [pool.apply_async(process_chunk, (chunk, str(output_dir), max_bytes, None, post_command))
                for chunk in chunks]
        for job in jobs:
            yield job.get()


# ---------------------------------------------------------------- manifest


def build_manifest(
    markers: list[dict[str, Any]], input_skips: list[Skip], cfg: DictConfig, digest: str, versions: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    skipped = [skip.as_dict() for skip in input_skips] + [skip for marker in markers for skip in marker["skipped"]]
    index = {split: [r for m in markers if m["split"] == split for r in m["records"]] for split in SPLITS}
    speakers: dict[str, dict[str, float]] = {}
    notes: dict[str, int] = {}
    for records in index.values():
        for record in records:
            stats = speakers.setdefault(record["speaker"], {"utterances": 0, "seconds": 0.0})
            stats["utterances"] += 1
            stats["seconds"] += record["duration"]
            for note in record["notes"]:
                notes[note] = notes.get(note, 0) + 1
    for stats in speakers.values():
        stats["hours"] = round(stats["seconds"] / 3600.0, 5)
        stats["mean_seconds"] = round(stats["seconds"] / stats["utterances"], 3)
        stats["seconds"] = round(stats["seconds"], 3)
    written = sum(len(records) for records in index.values())
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_hash": digest,
        "feature_versions": versions,
        "inputs": written + len(skipped),
        "written": written,
        "skipped": len(skipped),
        "skipped_by_reason": count_by_reason(skipped),
        "fixes_applied": notes,
        "hours": round(sum(r["duration"] for rs in index.values() for r in rs) / 3600.0, 5),
        "speakers": dict(sorted(speakers.items())),
        "splits": {
            split: {
                "count": len(records),
                "hours": round(sum(r["duration"] for r in records) / 3600.0, 5),
                "shards": sorted({r["shard"] for r in records}),
                "index": f"{split}.index.jsonl",
            }
            for split, records in index.items()
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    return manifest, skipped, index


def format_summary(manifest: dict[str, Any]) -> str:
    lines = [
        f"prepared {manifest['written']} of {manifest['inputs']} utterances, {manifest['hours'] * 60:.2f} minutes "
        f"({manifest['splits']['train']['count']} train / {manifest['splits']['val']['count']} val), "
        f"{len(manifest['splits']['train']['shards']) + len(manifest['splits']['val']['shards'])} shards",
    ]
    for name, stats in manifest["speakers"].items():
        lines.append(f"  speaker {name}: {stats['utterances']} utterances, {stats['seconds']:.1f} s")
    if manifest["skipped"]:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in manifest["skipped_by_reason"].items())
        lines.append(f"  skipped {manifest['skipped']} ({reasons}); details in skipped.jsonl")
    if manifest["fixes_applied"]:
        lines.append("  fixed: " + ", ".join(f"{k}: {v}" for k, v in manifest["fixes_applied"].items()))
    return "\n".join(lines)


def _write_outputs(output_dir: Path, manifest: dict, skipped: list[dict], index: dict[str, list[dict]]) -> None:
    for split, records in index.items():
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        (output_dir / f"{split}.index.jsonl").write_text(lines, encoding="utf-8")
    lines = "".join(json.dumps(skip, ensure_ascii=False) + "\n" for skip in skipped)
    (output_dir / "skipped.jsonl").write_text(lines, encoding="utf-8")
    _write_json_atomic(output_dir / "manifest.json", manifest)  # last: its presence means "finished"


# ---------------------------------------------------------------- entry point


def prepare(cfg: DictConfig) -> dict[str, Any] | None:
    """Run (or resume) preparation. Returns the manifest, or ``None`` while other partitions are unfinished."""
    output_dir = Path(cfg.output_dir).expanduser().resolve()
    utterances, input_skips = read_corpus(cfg.input.path, cfg.input.format, cfg.input.speaker, cfg.input.language)
    keys = assign_keys(utterances)
    split_of = split_assignment(utterances, keys, cfg.split)
    chunks = plan_chunks(utterances, keys, split_of, int(cfg.shards.utterances_per_chunk))
    digest = config_hash(cfg)
    partitions, partition = int(cfg.num_partitions), int(cfg.partition)
    if not 0 <= partition < partitions:
        raise ValueError(f"partition={partition} must be in [0, num_partitions={partitions})")
    if cfg.overwrite and partitions > 1:
        raise ValueError("overwrite=true with num_partitions>1 would let each partition delete the others' work; "
                         "delete output_dir once yourself (or run one overwrite=true job first)")
    claim_output_dir(output_dir, digest, bool(cfg.overwrite))

    mine = [c for position, c in enumerate(chunks) if position % partitions == partition]
    pending = [chunk for chunk in mine if not _done_path(output_dir, chunk).is_file()]
    if len(pending) < len(mine):
        log.info("resuming: %d of %d chunks already finished", len(mine) - len(pending), len(mine))
    with tqdm(total=sum(len(c.keys) for c in pending), desc="prepare", unit="utt", disable=not cfg.progress) as bar:
        pooled = int(cfg.num_workers) > 1
        for marker in _run_chunks(pending, cfg, output_dir, lambda: bar.update(1)):
            if pooled:  # pool workers cannot reach the bar: count whole chunks
                bar.update(len(marker["records"]) + len(marker["skipped"]))

    unfinished = [chunk.name for chunk in chunks if not _done_path(output_dir, chunk).is_file()]
    if unfinished:
        print(f"partition {partition}/{partitions} done; {len(unfinished)} chunks of other partitions still pending")
        return None
    markers = [json.loads(_done_path(output_dir, chunk).read_text()) for chunk in chunks]
    versions = next((m["feature_versions"] for m in markers if m.get("feature_versions")), {})
    manifest, skipped, index = build_manifest(markers, input_skips, cfg, digest, versions)
    if manifest["written"] == 0:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in manifest["skipped_by_reason"].items())
        raise NoValidSamplesError(
            f"no usable utterance in {cfg.input.path} ({manifest['inputs']} inputs; skipped {reasons}). "
            "See the reasons above, fix the inputs or relax the audio rules in conf/prepare.yaml"
        )
    _write_outputs(output_dir, manifest, skipped, index)
    print(format_summary(manifest))
    return manifest


__all__ = [
    "AudioRules",
    "DatasetExistsError",
    "NoValidSamplesError",
    "build_extractors",
    "compose_config",
    "format_summary",
    "prepare",
]


def compose_config(overrides: list[str]) -> DictConfig:
    """``conf/prepare.yaml`` composed with overrides, as ``gst-prepare`` would (for notebooks and benchmarks)."""
    from hydra import compose, initialize_config_dir

    config_dir = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose("prepare", overrides=overrides)

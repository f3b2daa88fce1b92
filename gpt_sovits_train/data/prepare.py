"""Data preparation: corpus → cleaned audio + text + features → WebDataset shards + manifest + skip report.

Layout of ``output_dir``::

    train/<chunk>-000.tar ...   shards (a chunk may roll over into -001... when it passes max_shard_bytes)
    val/<chunk>-000.tar ...
    train.index.jsonl           one line per sample: key, shard, lengths (what the DataModules batch by)
    manifest.json               counts, hours, per-speaker stats, feature versions, config hash, split
    skipped.jsonl               every input left out, with its reason
    .state/                     config hash, chunk plan + one ``<chunk>.done.json`` per finished chunk (resume),
                                and the lock files that keep two runs out of one folder

Safety: a run locks the folder (``flock``; the kernel drops the lock when the process dies, however it dies), so
a second run into it stops at once; partitions of one job share the folder lock and each locks its own
partition. ``overwrite=true`` deletes only the files that our own manifest/state lists (never a user's
``train/`` folder), and an output folder that overlaps the input is refused. The manifest is written last,
atomically, after every shard it lists has been checked (exists, same size, same samples).

Why chunks: inputs are cut into fixed, deterministic chunks before any work starts. A chunk is the unit of
resume (a finished chunk is never redone), of parallelism (a pool of workers takes chunks) and of scale-out
(``num_partitions``/``partition``: partition *p* takes chunks with ``index % num_partitions == p``, so N SLURM
array jobs can run ``prepare partition=$SLURM_ARRAY_TASK_ID num_partitions=N`` against one shared folder).
The run that finds every chunk done writes the manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import webdataset as wds
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gpt_sovits_train.constants import HOP
from gpt_sovits_train.data import storage
from gpt_sovits_train.data.errors import (
    DatasetExistsError,
    NoValidSamplesError,
    OutputInUseError,
    PrepareError,
)
from gpt_sovits_train.data.long_inputs import SliceReport, needs_slicing, slice_and_prepare, summarize
from gpt_sovits_train.data.remote_output import RemoteOutput, UploadReport, default_staging
from gpt_sovits_train.data.schema import SCHEMA_VERSION, encode_sample
from gpt_sovits_train.data.sources import Skip, Utterance, count_by_reason, read_corpus
from gpt_sovits_train.data.utterance import AudioRules, Extractors, assign_keys, process_utterance

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


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

STATE = ".state"
OUTPUT_FILES = ("manifest.json", "skipped.jsonl", *(f"{split}.index.jsonl" for split in SPLITS))


def _done_path(output_dir: Path, chunk: Chunk) -> Path:
    return output_dir / STATE / f"{chunk.name}.done.json"


def _write_json_atomic(path: Path, payload: Any) -> None:
    _write_text_atomic(path, json.dumps(payload, ensure_ascii=False, indent=1))


def _write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _read_json(path: Path) -> Any:
    """The parsed file, or ``None`` when it is missing or not JSON (a foreign or half-written file)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _flock(path: Path, shared: bool = False, wait: bool = False) -> Iterator[bool]:
    """Hold a kernel ``flock`` on ``path`` for the block; yields whether it was acquired (always, when ``wait``).

    The lock belongs to the open file, so it disappears with the process (kill -9, OOM, preemption) and a
    crashed run never leaves a stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, mode)
        except BlockingIOError:
            yield False
            return
        try:
            if not shared:
                handle.truncate(0)
                handle.write(f"{os.getpid()}\n")
                handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def lock_output_dir(output_dir: Path, partition: int, partitions: int) -> Iterator[None]:
    """Keep every other run out of ``output_dir``; the partitions of one job share it, one process each."""
    folder_lock = _flock(output_dir / STATE / "prepare.lock", shared=partitions > 1)
    partition_lock = _flock(output_dir / STATE / f"partition-{partition}.lock") if partitions > 1 else None
    with folder_lock as held, (partition_lock or contextlib.nullcontext(True)) as partition_held:
        if not (held and partition_held):
            what = f"partition {partition} of " if held else ""
            raise OutputInUseError(
                f"another gst-prepare run is using {what}{output_dir}; "
                "wait for it to finish or choose another output_dir"
            )
        yield


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _owned_files(output_dir: Path) -> set[Path]:
    """Every file that our own manifest or state in ``output_dir`` lists as written by ``gst-prepare``."""
    listed: set[str] = set()
    manifest = _read_json(output_dir / "manifest.json")
    if _is_our_manifest(manifest):
        listed.update(OUTPUT_FILES)
        for split in manifest["splits"].values():
            listed.update(split.get("shards", []))
    state = _read_json(output_dir / STATE / "config.json")
    if isinstance(state, dict) and "config_hash" in state:
        listed.update([*OUTPUT_FILES, f"{STATE}/config.json"])
        for name in state.get("chunks", []):
            split = name.split("-")[0]
            listed.update(p.relative_to(output_dir).as_posix() for p in (output_dir / split).glob(f"{name}-*.tar"))
        for marker_path in (output_dir / STATE).glob("*.done.json"):
            listed.add(marker_path.relative_to(output_dir).as_posix())
            marker = _read_json(marker_path) or {}
            listed.update(record["shard"] for record in marker.get("records", []) if "shard" in record)
    owned = {(output_dir / name).resolve() for name in listed}
    return {path for path in owned if _inside(path, output_dir) and path.is_file()}


def _is_our_manifest(manifest: Any) -> bool:
    return isinstance(manifest, dict) and "config_hash" in manifest and isinstance(manifest.get("splits"), dict)


def _delete_owned(output_dir: Path) -> int:
    """Delete what a previous run wrote (and nothing else); folders go only when that leaves them empty."""
    owned = _owned_files(output_dir)
    for path in owned:
        path.unlink(missing_ok=True)
    for folder in (*SPLITS, STATE):
        with contextlib.suppress(OSError):
            (output_dir / folder).rmdir()
    return len(owned)


def claim_output_dir(
    output_dir: Path, digest: str, overwrite: bool, chunks: Iterable[Chunk] = (), alone: bool = True
) -> None:
    """Refuse to clobber a finished dataset or mix two configs in one folder unless ``overwrite=true``.

    A partial dataset made with another config by a run that *failed* (an exception, recorded in the state) is
    ours to discard when this run is alone in the folder: the corrected re-run must not need ``overwrite``.
    """
    manifest_path = output_dir / "manifest.json"
    state_path = output_dir / STATE / "config.json"
    manifest = _read_json(manifest_path)
    if manifest_path.exists() and not _is_our_manifest(manifest):
        raise DatasetExistsError(f"{manifest_path} was not written by gst-prepare; choose another output_dir")
    state = _read_json(state_path) if state_path.exists() else None
    if state_path.exists() and not (isinstance(state, dict) and "config_hash" in state):
        raise DatasetExistsError(f"{state_path} was not written by gst-prepare; choose another output_dir")
    if overwrite:
        _delete_owned(output_dir)
    elif manifest is not None:
        raise DatasetExistsError(
            f"{output_dir} already holds a finished dataset (manifest.json); "
            "pass overwrite=true to rebuild it or choose another output_dir"
        )
    elif state is not None and state["config_hash"] != digest:
        if state.get("failed") and alone:
            log.info("discarding the partial dataset of a failed run with another config (%s)", state["failed"])
            _delete_owned(output_dir)
        else:
            raise DatasetExistsError(
                f"{output_dir} holds a partial dataset made with another config (hash {state['config_hash']}, "
                f"now {digest}); pass overwrite=true to start over or use the original config to resume"
            )
    current = _read_json(state_path)
    if current is None or current.get("failed"):
        _write_json_atomic(state_path, {"config_hash": digest, "chunks": sorted(c.name for c in chunks)})


def _record_failure(output_dir: Path, error: BaseException) -> None:
    """Mark the state as left by a failed run, so a corrected config may take the folder over."""
    state_path = output_dir / STATE / "config.json"
    state = _read_json(state_path)
    if isinstance(state, dict):
        state["failed"] = f"{type(error).__name__}: {error}"[:500]
        _write_json_atomic(state_path, state)


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


def _init_worker(features: dict, audio: dict, threads: int, asr: dict | None = None) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["extractors"] = build_extractors(features)
    _WORKER["rules"] = AudioRules(**audio)
    _WORKER["asr"] = instantiate(asr) if asr else None  # transcribes clips of untranscribed recordings


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
    records, skips, sliced = [], [], []
    writer = None
    try:
        for utterance, key in zip(chunk.utterances, chunk.keys):
            if needs_slicing(utterance, rules):  # one input, many clips: each written as soon as it is ready
                report = SliceReport(utterance.audio_path)
                results: Iterable[dict[str, Any] | Skip] = slice_and_prepare(
                    utterance, key, rules, extractors, _WORKER["asr"], report)
            else:
                report, results = None, [process_utterance(utterance, key, rules, extractors)]
            for result in results:
                if isinstance(result, Skip):
                    skips.append(result.as_dict())
                    continue
                if writer is None:
                    pattern = str(split_dir / f"{chunk.name}-%03d.tar")
                    writer = wds.ShardWriter(pattern, maxsize=max_shard_bytes, maxcount=10**9, verbose=0,
                                             post=_post_command_hook(post_command, output_dir))
                writer.write(encode_sample(result))
                records.append(_index_record(result, Path(writer.fname).relative_to(output_dir).as_posix()))
            if report is not None:
                sliced.append(report.as_dict())
            if on_item is not None:
                on_item()
    finally:
        if writer is not None:
            writer.close()
    shards: dict[str, dict[str, int]] = {}
    for record in records:
        entry = shards.setdefault(record["shard"], {"samples": 0})
        entry["samples"] += 1
    for shard, entry in shards.items():
        entry["bytes"] = (Path(output_dir) / shard).stat().st_size
    marker = {
        "chunk": chunk.name,
        "split": chunk.split,
        "records": records,
        "skipped": skips,
        "sliced": sliced,
        "shards": shards,
        "feature_versions": extractors.versions,
    }
    _write_json_atomic(_done_path(Path(output_dir), chunk), marker)
    return marker


def _index_record(sample: dict[str, Any], shard: str) -> dict[str, Any]:
    """What the DataModules need to plan batches without opening shards."""
    meta = sample["meta"]
    span = {"span": meta["span"]} if "span" in meta else {}  # a clip sliced from a longer recording
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
        **span,
    }


def _run_chunks(
    chunks: list[Chunk], cfg: DictConfig, output_dir: Path, on_item: Callable[[], None]
) -> Iterator[dict[str, Any]]:
    """Markers of finished chunks; in-process runs report every utterance, pools every chunk."""
    features = OmegaConf.to_container(cfg.features, resolve=True)
    audio = OmegaConf.to_container(cfg.audio, resolve=True)
    asr = _asr_config(cfg)
    workers = max(1, int(cfg.num_workers))
    threads = max(1, int(cfg.threads_per_worker))
    max_bytes = int(cfg.shards.max_shard_bytes)
    post_command = cfg.shards.get("post_command")
    if workers == 1:
        _init_worker(features, audio, threads, asr)
        for chunk in chunks:
            yield process_chunk(chunk, str(output_dir), max_bytes, on_item, post_command)
        return
    context = multiprocessing.get_context("spawn")  # CUDA and tokenizers do not survive fork
    with context.Pool(workers, initializer=_init_worker, initargs=(features, audio, threads, asr)) as pool:
        jobs = [pool.apply_async(process_chunk, (chunk, str(output_dir), max_bytes, None, post_command))
                for chunk in chunks]
        for job in jobs:
            yield job.get()


def _asr_config(cfg: DictConfig) -> dict | None:
    """``input.asr`` (chosen with ``clone/asr@input.asr=...``), only when untranscribed inputs are sliced."""
    asr = OmegaConf.select(cfg, "input.asr", default=None)
    if asr is None or not cfg.audio.get("slice_long_inputs", False):
        return None
    return OmegaConf.to_container(asr, resolve=True)


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
    sliced = [report for marker in markers for report in marker.get("sliced", [])]
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
                "shard_samples": {shard: sum(r["shard"] == shard for r in records)
                                  for shard in sorted({r["shard"] for r in records})},
                "index": f"{split}.index.jsonl",
            }
            for split, records in index.items()
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if sliced:
        manifest["sliced"] = summarize(sliced)
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
    if "sliced" in manifest:
        sliced = manifest["sliced"]
        left_out = ", ".join(f"{reason}: {seconds:.1f} s" for reason, seconds in sliced["left_out_seconds"].items())
        lines.append(
            f"  sliced {sliced['inputs']} untranscribed recording(s), {sliced['seconds']:.1f} s: {sliced['clips']} "
            f"clips written ({sliced['clip_seconds']:.1f} s), {sliced['left_out_spans']} spans left out "
            f"({left_out or 'none'}), {sliced['pause_seconds']:.1f} s of pauses; clip texts are ASR drafts"
        )
    return "\n".join(lines)


def _write_outputs(output_dir: Path, manifest: dict, skipped: list[dict], index: dict[str, list[dict]]) -> None:
    for split, records in index.items():
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        _write_text_atomic(output_dir / f"{split}.index.jsonl", lines)
    lines = "".join(json.dumps(skip, ensure_ascii=False) + "\n" for skip in skipped)
    _write_text_atomic(output_dir / "skipped.jsonl", lines)
    _write_json_atomic(output_dir / "manifest.json", manifest)  # last: its presence means "finished"


def _shard_keys(path: Path) -> set[str] | None:
    """The sample keys in one tar, or ``None`` when it is missing or unreadable."""
    try:
        with tarfile.open(path, "r:") as tar:
            return {member.name.split(".", 1)[0] for member in tar.getmembers() if member.isfile()}
    except (OSError, tarfile.TarError):
        return None


def verify_marker(output_dir: Path, marker: dict[str, Any]) -> str | None:
    """Why a finished chunk's shards no longer match what its marker recorded, or ``None`` when they do."""
    expected: dict[str, set[str]] = {}
    for record in marker["records"]:
        expected.setdefault(record["shard"], set()).add(record["key"])
    sizes = marker.get("shards", {})
    for shard, keys in expected.items():
        path = output_dir / shard
        if not path.is_file():
            return f"{shard} is missing"
        if shard in sizes and path.stat().st_size != sizes[shard]["bytes"]:
            return f"{shard} has {path.stat().st_size} bytes, {sizes[shard]['bytes']} were written"
        if _shard_keys(path) != keys:
            return f"{shard} does not hold the {len(keys)} samples that were written"
    return None


# ---------------------------------------------------------------- entry point


def check_request(cfg: DictConfig) -> tuple[Path, Path]:
    """Catch the user's mistakes before anything is read or built: (input path, output folder)."""
    for key in ("input.path", "output_dir"):
        if OmegaConf.select(cfg, key, default=None, throw_on_missing=False) in (None, "", "???"):
            raise PrepareError(
                f"{key} is not set; e.g. gst-prepare input.path=data/my.list output_dir=data/shards/my_voice"
            )
    partitions, partition = int(cfg.num_partitions), int(cfg.partition)
    if not 0 <= partition < partitions:
        raise PrepareError(f"partition={partition} must be in [0, num_partitions={partitions})")
    if cfg.overwrite and partitions > 1:
        raise PrepareError("overwrite=true with num_partitions>1 would let each partition delete the others' work; "
                           "run one overwrite=true job first (or delete output_dir yourself)")
    _check_slicing(cfg)
    source = Path(str(cfg.input.path)).expanduser().resolve()
    output_dir = local_output_dir(cfg)
    if not source.exists():
        raise PrepareError(f"input.path {source} does not exist; point it at a .list, metadata.csv or folder")
    existing = next((p for p in (output_dir, *output_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise PrepareError(f"output_dir {output_dir}: {existing} is a file, not a folder; choose another output_dir")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise PrepareError(f"output_dir {output_dir}: {existing} is not writable; choose another output_dir")
    if _inside(source, output_dir) or (source.is_dir() and _inside(output_dir, source)):
        raise PrepareError(f"output_dir {output_dir} overlaps the input {source}; choose a separate output_dir")
    return source, output_dir


def local_output_dir(cfg: DictConfig) -> Path:
    """Where this run writes: ``output_dir``, or for an object-store URL the local staging folder."""
    output = str(cfg.output_dir)
    if not storage.is_url(output):
        return Path(output).expanduser().resolve()
    staging = cfg.get("staging_dir")
    return Path(str(staging)).expanduser().resolve() if staging else default_staging(output).resolve()


def _check_slicing(cfg: DictConfig) -> None:
    """``audio.slice_long_inputs`` needs a transcriber and clips the duration policy accepts."""
    if not cfg.audio.get("slice_long_inputs", False):
        return
    if OmegaConf.select(cfg, "input.asr", default=None) is None:
        raise PrepareError("audio.slice_long_inputs=true needs an ASR for the clips it cuts: add "
                           "clone/asr@input.asr=pocketsphinx (offline English) or clone/asr@input.asr=whisper")
    rules = AudioRules(**OmegaConf.to_container(cfg.audio, resolve=True))
    if not 0 < rules.slice.min_seconds < rules.slice.max_seconds <= rules.max_seconds:
        raise PrepareError(
            f"need 0 < audio.slice.min_seconds ({rules.slice.min_seconds:g}) < audio.slice.max_seconds "
            f"({rules.slice.max_seconds:g}) <= audio.max_seconds ({rules.max_seconds:g}, the clip-duration policy)")


def _refuse_overlap(utterances: list[Utterance], output_dir: Path) -> None:
    inside = [u.audio_path for u in utterances if _inside(Path(u.audio_path).resolve(), output_dir)]
    if inside:
        raise PrepareError(f"output_dir {output_dir} overlaps the input: it holds {len(inside)} of the input "
                           f"recordings (e.g. {inside[0]}); choose a separate output_dir")


def prepare(cfg: DictConfig) -> dict[str, Any] | None:
    """Run (or resume) preparation. Returns the manifest, or ``None`` while other partitions are unfinished.

    With ``output_dir=s3://...`` the work happens in the local staging folder and the result is published to the
    bucket, manifest last (:mod:`gpt_sovits_train.data.remote_output`).
    """
    source, output_dir = check_request(cfg)
    remote = RemoteOutput(str(cfg.output_dir)) if storage.is_url(str(cfg.output_dir)) else None
    utterances, input_skips = read_corpus(source, cfg.input.format, cfg.input.speaker, cfg.input.language,
                                          keep_untranscribed=bool(cfg.audio.get("slice_long_inputs", False)))
    _refuse_overlap(utterances, output_dir)
    keys = assign_keys(utterances)
    split_of = split_assignment(utterances, keys, cfg.split)
    chunks = plan_chunks(utterances, keys, split_of, int(cfg.shards.utterances_per_chunk))
    digest = config_hash(cfg)
    partitions, partition = int(cfg.num_partitions), int(cfg.partition)
    if remote is not None:  # before any work: a prefix we may not write to stops the run now
        remote.check(digest, bool(cfg.overwrite), output_dir)
    try:
        (output_dir / STATE).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"cannot create output_dir {output_dir}: {error.strerror}; choose another output_dir"
        raise PrepareError(message) from None
    with lock_output_dir(output_dir, partition, partitions):
        staged = _read_json(output_dir / "manifest.json")
        if remote is not None and not cfg.overwrite and _is_our_manifest(staged) and staged["config_hash"] == digest:
            _publish(remote, output_dir, staged)  # prepared before, not (fully) uploaded: only publish
            return staged
        claim_output_dir(output_dir, digest, bool(cfg.overwrite), chunks, alone=partitions == 1)
        if remote is not None:
            remote.claim(digest, output_dir, bool(cfg.overwrite))
        try:
            return _prepare_claimed(cfg, output_dir, chunks, input_skips, digest, remote)
        except BaseException as error:
            if not isinstance(error, KeyboardInterrupt):
                _record_failure(output_dir, error)
            raise


def _prepare_claimed(
    cfg: DictConfig,
    output_dir: Path,
    chunks: list[Chunk],
    input_skips: list[Skip],
    digest: str,
    remote: RemoteOutput | None = None,
) -> dict[str, Any] | None:
    """Process this partition's pending chunks; the run that finds every chunk done writes the manifest."""
    partitions, partition = int(cfg.num_partitions), int(cfg.partition)
    mine = [c for position, c in enumerate(chunks) if position % partitions == partition]
    pending = [chunk for chunk in mine if not _done_path(output_dir, chunk).is_file()]
    if len(pending) < len(mine):
        log.info("resuming: %d of %d chunks already finished", len(mine) - len(pending), len(mine))
    _process(pending, cfg, output_dir)
    uploads = UploadReport()
    if remote is not None:  # this partition's new shards go up now (array tasks upload in parallel)
        written = [json.loads(_done_path(output_dir, chunk).read_text())["shards"] for chunk in pending]
        remote.upload_shards(output_dir, [shard for shards in written for shard in shards], uploads)

    unfinished = [chunk.name for chunk in chunks if not _done_path(output_dir, chunk).is_file()]
    if unfinished:
        print(f"partition {partition}/{partitions} done; {len(unfinished)} chunks of other partitions still pending")
        if remote is not None:
            print(f"  {uploads.summary(remote.url)}")
        return None
    with _flock(output_dir / STATE / "manifest.lock", wait=True):  # partitions finishing together take turns
        markers = _verified_markers(chunks, cfg, output_dir)
        versions = next((m["feature_versions"] for m in markers if m.get("feature_versions")), {})
        manifest, skipped, index = build_manifest(markers, input_skips, cfg, digest, versions)
        if manifest["written"] == 0:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in manifest["skipped_by_reason"].items())
            raise NoValidSamplesError(
                f"no usable utterance in {cfg.input.path} ({manifest['inputs']} inputs; skipped {reasons}). "
                "See the reasons above, fix the inputs or relax the audio rules in conf/prepare.yaml"
            )
        _write_outputs(output_dir, manifest, skipped, index)
        if remote is not None:
            _publish(remote, output_dir, manifest, uploads)
            return manifest
    print(format_summary(manifest))
    return manifest


def _publish(
    remote: RemoteOutput, output_dir: Path, manifest: dict[str, Any], uploads: UploadReport | None = None
) -> None:
    report = remote.publish(output_dir, manifest, uploads)
    print(format_summary(manifest))
    print(f"  {report.summary(remote.url)}; manifest.json written last (staging: {output_dir})")


def _process(chunks: list[Chunk], cfg: DictConfig, output_dir: Path) -> None:
    with tqdm(total=sum(len(c.keys) for c in chunks), desc="prepare", unit="utt", disable=not cfg.progress) as bar:
        pooled = int(cfg.num_workers) > 1
        inputs = {chunk.name: len(chunk.keys) for chunk in chunks}  # a sliced input yields many records
        for marker in _run_chunks(chunks, cfg, output_dir, lambda: bar.update(1)):
            if pooled:  # pool workers cannot reach the bar: count whole chunks
                bar.update(inputs[marker["chunk"]])


def _verified_markers(chunks: list[Chunk], cfg: DictConfig, output_dir: Path) -> list[dict[str, Any]]:
    """Every chunk's marker, after checking its shards; a chunk whose shards changed is redone once, here."""
    problems = {}
    for chunk in chunks:
        problem = verify_marker(output_dir, json.loads(_done_path(output_dir, chunk).read_text()))
        if problem is not None:
            problems[chunk.name] = problem
    if problems:
        log.warning("redoing %d chunk(s) whose shards changed after they were written: %s", len(problems),
                    "; ".join(problems.values()))
        redo = [chunk for chunk in chunks if chunk.name in problems]
        for chunk in redo:
            _done_path(output_dir, chunk).unlink()
        _process(redo, cfg, output_dir)
    markers = [json.loads(_done_path(output_dir, chunk).read_text()) for chunk in chunks]
    for marker in markers:
        problem = verify_marker(output_dir, marker)
        if problem is not None:
            raise PrepareError(f"shard check failed after redoing it: {problem}; is another tool writing to "
                               f"{output_dir}?")
    return markers


__all__ = [
    "AudioRules",
    "DatasetExistsError",
    "NoValidSamplesError",
    "OutputInUseError",
    "PrepareError",
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

"""``gst-prepare output_dir=s3://bucket/prefix``: prepare in a local staging folder, then publish to object storage.

Why staging: everything that makes a local run safe (the ``flock``, resumable chunks, shard verification, the
atomic manifest) needs a POSIX folder, and object stores have no locks, renames or appends. So the dataset is
prepared exactly as for a local ``output_dir`` into ``staging_dir`` (default
``$XDG_CACHE_HOME/gpt_sovits_train/prepare-staging/<bucket>/<prefix>``; put it on shared storage for SLURM arrays),
and :class:`RemoteOutput` publishes it:

* **Before any work**, the prefix is checked: a prefix holding files ``gst-prepare`` did not write is refused
  (``overwrite`` or not: this code deletes only its own files), a finished dataset there is kept unless
  ``overwrite=true``, and a prefix being filled with another config or from another staging folder is refused.
  A run then writes ``.gst-prepare.json`` (config hash, staging folder) to claim the prefix.
* Shards are uploaded as soon as a partition finishes its chunks (array jobs upload in parallel); the run that
  writes the manifest uploads what is still missing, the split indexes and ``skipped.jsonl``, checks that every
  shard the manifest lists is in the bucket with its verified size, deletes stale shards of earlier attempts, and
  writes ``manifest.json`` **last** (one PUT, atomic). A reader (the DataModules) therefore never sees a manifest
  that lists a shard which is not there, and a prefix without ``manifest.json`` is an unfinished dataset.
* Re-running resumes: a shard already in the bucket with the size of the verified local shard is not uploaded
  again (shard names are deterministic and shards are verified locally before upload; the size check catches a
  truncated upload, not a same-size corruption in the store). A run whose staging already holds the finished
  dataset only publishes.

Credentials come from the environment as for reading (:mod:`gpt_sovits_train.data.storage`); none is stored.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt_sovits_train.data import storage
from gpt_sovits_train.data.errors import DatasetExistsError, PrepareError

CLAIM = ".gst-prepare.json"
#: Everything a published dataset may hold besides its shards.
TOP_FILES = (CLAIM, "manifest.json", "skipped.jsonl", "train.index.jsonl", "val.index.jsonl")
#: Shard names as ``prepare`` writes them: ``<split>/<split>-<chunk>-<part>.tar``.
SHARD = re.compile(r"^(train|val)/(train|val)-\d{6}-\d{3,}\.tar$")


def default_staging(url: str) -> Path:
    """Where a run for ``url`` prepares locally unless ``staging_dir`` says otherwise (stable, so reruns resume)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    scheme, _, rest = url.partition("://")
    parts = [re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in rest.strip("/").split("/") if part]
    return cache / "gpt_sovits_train" / "prepare-staging" / scheme / Path(*parts)


@dataclass
class UploadReport:
    """What one publish did (printed; tests read it)."""

    uploaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0

    def summary(self, url: str) -> str:
        return (f"uploaded {len(self.uploaded)} shard(s) ({self.bytes_uploaded / 1e6:.1f} MB) to {url}, "
                f"{len(self.already_there)} already there" +
                (f", {len(self.deleted)} stale removed" if self.deleted else ""))


class RemoteOutput:
    """One dataset prefix in object storage, written only through a local staging folder."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self.fs, self.root = storage.filesystem(self.url)
        except ImportError as error:
            raise PrepareError(f"output_dir={url} needs {error.name or 'the fsspec backend'}: "
                               "pip install -e '.[cluster]' (s3fs)") from None
        except ValueError as error:
            raise PrepareError(f"output_dir={url}: {error}") from None
        self.root = self.root.rstrip("/")

    # ------------------------------------------------------------ reading the prefix

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def listing(self) -> dict[str, int]:
        """Every object under the prefix: name relative to it → size in bytes."""
        try:
            self.fs.invalidate_cache()
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError as error:
            raise PrepareError(f"cannot list {self.url}: {error}; create the bucket first") from None
        except Exception as error:  # botocore/aiohttp raise many types; the user needs the URL and the cause
            raise PrepareError(f"cannot list {self.url}: {type(error).__name__}: {error}") from None
        prefix = self.root + "/"
        return {path[len(prefix) :]: int(info.get("size", 0)) for path, info in found.items()
                if path.startswith(prefix)}

    def _read_json(self, name: str) -> Any:
        try:
            with self.fs.open(self._path(name), "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            return None

    @staticmethod
    def is_ours(name: str) -> bool:
        return name in TOP_FILES or SHARD.match(name) is not None

    def check(self, digest: str, overwrite: bool, staging: Path) -> None:
        """Refuse a prefix this run must not write to; read-only (called before any work)."""
        files = self.listing()
        if not files:
            return
        claim = self._read_json(CLAIM) if CLAIM in files else None
        manifest = self._read_json("manifest.json") if "manifest.json" in files else None
        ours_manifest = isinstance(manifest, dict) and "config_hash" in manifest and "splits" in manifest
        if "manifest.json" in files and not ours_manifest:
            raise DatasetExistsError(f"{self.url}/manifest.json was not written by gst-prepare; "
                                     "choose another output_dir")
        foreign = sorted(name for name in files if not self.is_ours(name))
        if not isinstance(claim, dict) and not ours_manifest:
            foreign = sorted(files)
        if foreign:
            raise DatasetExistsError(
                f"{self.url} holds {len(foreign)} file(s) gst-prepare did not write (e.g. {foreign[0]}); "
                "choose an empty prefix (nothing there is deleted or overwritten)")
        if overwrite:
            return
        if ours_manifest:
            raise DatasetExistsError(f"{self.url} already holds a finished dataset (manifest.json); "
                                     "pass overwrite=true to rebuild it or choose another output_dir")
        if isinstance(claim, dict) and claim.get("config_hash") != digest:
            raise DatasetExistsError(
                f"{self.url} holds a partial dataset made with another config (hash {claim.get('config_hash')}, "
                f"now {digest}); pass overwrite=true to start over or use the original config to resume")
        if isinstance(claim, dict) and claim.get("staging") != str(staging):
            raise DatasetExistsError(
                f"{self.url} is being filled from another staging folder ({claim.get('staging')}); rerun with "
                f"staging_dir={claim.get('staging')} to resume it, or pass overwrite=true to start over")

    # ------------------------------------------------------------ writing the prefix

    def claim(self, digest: str, staging: Path, overwrite: bool) -> None:
        """Take the prefix for this config (after :meth:`check`); ``overwrite`` first deletes our old files,
        the manifest before anything else, so readers stop seeing the old dataset at once."""
        if overwrite:
            files = self.listing()
            self._delete([name for name in ("manifest.json",) if name in files])
            self._delete(sorted(name for name in files if self.is_ours(name) and name != "manifest.json"))
        payload = {"config_hash": digest, "staging": str(staging), "writer": "gst-prepare"}
        self._put_bytes(CLAIM, json.dumps(payload, indent=1).encode("utf-8"))

    def upload_shards(self, staging: Path, shards: list[str], report: UploadReport | None = None) -> UploadReport:
        """Upload the verified local ``shards`` the prefix lacks (or holds with another size)."""
        report = report or UploadReport()
        remote = self.listing()
        for shard in sorted(set(shards) - set(report.uploaded)):
            local = staging / shard
            if not local.is_file():
                raise PrepareError(f"{local} is missing from the staging folder; pass overwrite=true to prepare "
                                   "the dataset again")
            size = local.stat().st_size
            if remote.get(shard) == size:
                report.already_there.append(shard)
                continue
            self._put_file(local, shard)
            report.uploaded.append(shard)
            report.bytes_uploaded += size
        return report

    def publish(self, staging: Path, manifest: dict[str, Any], report: UploadReport | None = None) -> UploadReport:
        """Shards, then indexes and skip report, then (after checking the shards are all there) the manifest.
        ``report``: what this run uploaded before (a partition's own shards), to be continued."""
        listed = [shard for split in manifest["splits"].values() for shard in split["shards"]]
        report = self.upload_shards(staging, listed, report)
        remote = self.listing()
        expected = {shard: (staging / shard).stat().st_size for shard in listed}
        wrong = [shard for shard, size in expected.items() if remote.get(shard) != size]
        if wrong:
            raise PrepareError(f"{self.url}/{wrong[0]} is not in the bucket with the size that was uploaded "
                               f"({len(wrong)} shard(s)); is another tool writing to {self.url}? Rerun to resume")
        stale = sorted(name for name in remote if SHARD.match(name) and name not in expected)
        self._delete(stale)  # shards of an earlier attempt that this manifest does not list
        report.deleted.extend(stale)
        for name in ("skipped.jsonl", *(split["index"] for split in manifest["splits"].values())):
            self._put_file(staging / name, name)
        self._put_file(staging / "manifest.json", "manifest.json")  # last: its presence means "finished"
        return report

    def _put_file(self, local: Path, name: str) -> None:
        try:
            self.fs.put_file(str(local), self._path(name))
        except Exception as error:  # network, credentials, quota: name the object; a rerun resumes
            raise PrepareError(f"uploading {local} to {self.url}/{name} failed: {type(error).__name__}: {error}; "
                               "rerun the same command to resume") from None

    def _put_bytes(self, name: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(name), data)
        except Exception as error:
            raise PrepareError(f"writing {self.url}/{name} failed: {type(error).__name__}: {error}") from None

    def _delete(self, names: list[str]) -> None:
        if names:
            self.fs.rm([self._path(name) for name in names])

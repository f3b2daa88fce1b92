"""Dataset folders that may live in object storage: ``s3://bucket/prefix`` (s3fs) or any fsspec URL.

A dataset location is either a local path or a URL with a scheme. Local paths keep using ``pathlib`` (atomic
renames, the same behaviour as before); URLs go through ``fsspec``. Credentials are whatever the filesystem
library finds on its own (``AWS_*`` environment variables, ``~/.aws/config``, instance roles; for an
S3-compatible server ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``): nothing here takes, logs or stores them,
so configs and run folders only ever hold the URL.

Shards are streamed by webdataset; importing this module registers an fsspec opener for URL schemes that
webdataset has no handler for, so ``s3://...`` shard URLs work in every DataLoader worker. A shard that cannot
be read (bucket gone, object deleted, server unreachable) raises :class:`ShardReadError` naming the shard
instead of retrying forever.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import IO, Any

import fsspec

OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "memory")


class ShardReadError(OSError):
    """A shard (or index file) of a dataset in object storage could not be read."""

    def __str__(self) -> str:  # webdataset appends the URL to ``args``; the message already names it
        return str(self.args[0]) if self.args else super().__str__()


def is_url(location: str | Path) -> bool:
    """True for ``scheme://...`` locations other than plain local files."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def join(root: str | Path, *parts: str) -> str:
    """``root/part/...`` for local paths and URLs alike."""
    if not is_url(root):
        return str(Path(root).expanduser().joinpath(*parts))
    return "/".join([str(root).rstrip("/"), *(p.strip("/") for p in parts)])


def _endpoint_options(url: str) -> dict[str, Any]:
    """s3fs does not read the AWS_ENDPOINT_URL* variables itself (botocore only does in recent versions)."""
    if url.split("://", 1)[0] in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def open_url(url: str, mode: str = "rb") -> IO:
    """Open a local path or fsspec URL; read errors name the location."""
    if not is_url(url):
        return open(url, mode)
    try:
        return fsspec.open(url, mode, **_endpoint_options(url)).open()
    except Exception as error:  # s3fs/botocore raise many types; the user needs the location and the cause
        raise ShardReadError(f"cannot read {url}: {type(error).__name__}: {error}") from error


def exists(location: str | Path) -> bool:
    if not is_url(location):
        return Path(location).expanduser().exists()
    fs, path = fsspec.core.url_to_fs(str(location), **_endpoint_options(str(location)))
    return fs.exists(path)


def read_text(location: str | Path) -> str:
    with open_url(str(location), "rb") as handle:
        return handle.read().decode("utf-8")


def write_text(location: str | Path, text: str) -> None:
    """Write a small text file; local files atomically (temp + rename), objects in one PUT (atomic by nature)."""
    if not is_url(location):
        path = Path(location)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return
    with fsspec.open(str(location), "wb", **_endpoint_options(str(location))) as handle:
        handle.write(text.encode("utf-8"))


def read_json(location: str | Path) -> Any:
    return json.loads(read_text(location))


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any) -> IO:
    return open_url(url, mode)


wds_gopen = importlib.import_module("webdataset.gopen")  # the package re-exports a function under that name
for _scheme in OBJECT_STORE_SCHEMES:
    wds_gopen.gopen_schemes.setdefault(_scheme, _gopen_fsspec)

__all__ = ["ShardReadError", "exists", "is_url", "join", "open_url", "read_json", "read_text", "write_text"]

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

``pipe:`` URLs (``pipe:aws s3 cp s3://bucket/{shard} -``) go through the same hook: :class:`TimedPipe` runs the
command and raises :class:`ShardReadError` naming the shard and the command when no byte arrives for
``read_timeout_s`` (a stuck download would otherwise block training forever with no output) or when the
command exits with an error. The timeout measures silence, not the whole transfer, so a slow but moving
download is never cut off. On a timeout (or when the reader stops early) the command's whole process group is
killed and waited for, so no process or zombie is left behind.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import select
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

import fsspec

OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "memory")
#: Seconds without a byte from a ``pipe:`` shard source before it counts as stalled (``data.shard_read_timeout_s``).
DEFAULT_READ_TIMEOUT_S = 300.0


class ShardReadError(OSError):
    """A shard (or index file) of a dataset could not be read: object storage, or a ``pipe:`` command."""

    def __init__(self, message: str, *args: Any) -> None:
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:  # webdataset rewrites ``args`` (appends the URL, the stream); the message names both
        return self.message


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


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)`` for a URL, with the endpoint the environment names."""
    return fsspec.core.url_to_fs(url, **_endpoint_options(url))


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
    fs, path = filesystem(str(location))
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


class TimedPipe(io.RawIOBase):
    """Read the stdout of a ``pipe:`` command, with a timeout on silence and errors that name the shard."""

    def __init__(self, url: str, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> None:
        super().__init__()
        self.url, self.command, self.timeout = url, url[len("pipe:") :], float(read_timeout_s)
        # A new session makes the command the leader of its own process group: killing the group also stops
        # what the shell started (`aws`, `curl`...), not only the shell.
        self.proc = subprocess.Popen(self.command, shell=True, stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            self._stop()
            raise ShardReadError(
                f"shard {self.url!r} stalled: no data for {self.timeout:g} s from the command `{self.command}`, "
                "which was stopped; run the command by hand to see why (credentials, network, a missing "
                "object), or raise data.shard_read_timeout_s for a very slow source"
            )
        data = os.read(self.fd, len(buffer))
        buffer[: len(data)] = data
        if not data:
            status = self.proc.wait()
            if status not in (0, -signal.SIGPIPE, 128 + signal.SIGPIPE):
                raise ShardReadError(
                    f"shard {self.url!r}: the command `{self.command}` failed with exit status "
                    f"{status}; run it by hand to see why"
                )
        return len(data)

    def _stop(self) -> None:
        """Kill the command's process group (if still running) and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if not self.closed:
            self._stop()  # a reader that stops early must not leave the download running
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        super().close()


def open_pipe(url: str, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> IO:
    """A buffered reader over :class:`TimedPipe` (tar streaming reads in small pieces)."""
    return io.BufferedReader(TimedPipe(url, read_timeout_s), buffer_size=1 << 16)


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any) -> IO:
    return open_url(url, mode)


def _gopen_pipe(url: str, mode: str = "rb", bufsize: int = 8192, read_timeout_s: float | None = None, **_: Any) -> IO:
    if mode != "rb":
        raise ValueError(f"{url}: pipe: shard sources are read-only here")
    return open_pipe(url, DEFAULT_READ_TIMEOUT_S if read_timeout_s is None else read_timeout_s)


def open_shard(url: str, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> IO:
    """Open a shard for streaming: a local path, an fsspec URL, or a ``pipe:`` command (with the read timeout)."""
    if url.startswith("pipe:"):
        return open_pipe(url, read_timeout_s)
    return wds_gopen.gopen(url, "rb")


wds_gopen = importlib.import_module("webdataset.gopen")  # the package re-exports a function under that name
for _scheme in OBJECT_STORE_SCHEMES:
    wds_gopen.gopen_schemes.setdefault(_scheme, _gopen_fsspec)
wds_gopen.gopen_schemes["pipe"] = _gopen_pipe  # every webdataset pipe: read gets the stall timeout

__all__ = [
    "DEFAULT_READ_TIMEOUT_S",
    "ShardReadError",
    "TimedPipe",
    "exists",
    "filesystem",
    "is_url",
    "join",
    "open_shard",
    "open_url",
    "read_json",
    "read_text",
    "write_text",
]

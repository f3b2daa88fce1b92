"""Checkpoint writing that never leaves a half-written file under the final name.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction. For local paths fsspec stages the
bytes in the *system* temp dir and then ``shutil.move``s them: across file systems (``/tmp`` on tmpfs, checkpoints
on a network disk) that move is a copy, so a crash or ``kill -9`` mid-copy leaves a truncated ``last.ckpt`` and
the next resume fails. Here the temp file lives next to the target, is fsynced, and is renamed with
``os.replace`` (atomic on POSIX), so a reader sees either the old checkpoint or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

TEMP_SUFFIX = ".tmp"


def atomic_torch_save(obj: Any, target: str | os.PathLike) -> Path:
    """``torch.save`` to ``target`` via a sibling temp file + fsync + rename; returns the final path."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(target.parent)
    return target


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (the directory entry), so a power loss cannot undo it."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not allow opening directories; the rename is still atomic
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (remote object stores already replace whole objects)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} does not take storage_options (got {storage_options!r}); "
                "pass them through a custom CheckpointIO plugin instead."
            )
        fs, local_path = fsspec.core.url_to_fs(str(path))
        if not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, local_path)

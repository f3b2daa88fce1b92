"""Checkpoint writing that never leaves a half-written file under the final name.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction. For local paths fsspec stages the
bytes in the *system* temp dir and then ``shutil.move``s them: across file systems (``/tmp`` on tmpfs, checkpoints
on a network disk) that move is a copy, so a crash or ``kill -9`` mid-copy leaves a truncated ``last.ckpt`` and
the next resume fails. Here the temp file lives next to the target, is fsynced, and is renamed with
``os.replace`` (atomic on POSIX), so a reader sees either the old checkpoint or the complete new one.

Reading is just as strict: a resumed checkpoint may have come from anywhere, so
:meth:`AtomicCheckpointIO.load_checkpoint`
never unpickles code. It reads with ``torch.load(weights_only=True)`` through the project's safe loader
(:func:`gpt_sovits_train.interchange.safe_load.load_checkpoint`). To make that possible for our own files, the
``hyper_parameters`` Lightning records (Hydra ``_partial_`` optimizer factories, ``ListConfig``s) are written as plain
data (:func:`plain_hyperparameters`); resuming never reads them back. Checkpoints written before that still resume:
their hyperparameter records are read as inert placeholders and dropped, and everything else must be plain.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, ListConfig, OmegaConf

from gpt_sovits_train.interchange.safe_load import HYPERPARAMETER_KEYS, UnsafeCheckpointError, load_checkpoint

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


def plain_hyperparameters(value: Any) -> Any:
    """Hyperparameters as data ``torch.load(weights_only=True)`` reads: OmegaConf containers become dicts/lists,
    a (Hydra) partial becomes its config (``{"_target_": ..., "_partial_": true, **keywords}``), any other object
    its ``repr``. Records only: resuming restores state dicts, never these."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, functools.partial):
        func = value.func
        node: dict[str, Any] = {"_target_": f"{func.__module__}.{func.__qualname__}", "_partial_": True}
        if value.args:
            node["_args_"] = plain_hyperparameters(list(value.args))
        return node | {k: plain_hyperparameters(v) for k, v in value.keywords.items()}
    if isinstance(value, Mapping):
        return {k: plain_hyperparameters(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_hyperparameters(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    return repr(value)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (remote object stores already replace whole objects) and
    whose loads never execute pickled code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} does not take storage_options (got {storage_options!r}); "
                "pass them through a custom CheckpointIO plugin instead."
            )
        checkpoint = {k: plain_hyperparameters(v) if k in HYPERPARAMETER_KEYS else v for k, v in checkpoint.items()}
        fs, local_path = fsspec.core.url_to_fs(str(path))
        if not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, local_path)

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        """Read a checkpoint to resume from without executing code, whatever ``weights_only`` the caller asks for:
        local files through the safe loader, remote ones with ``torch.load(weights_only=True)``. A file holding
        pickled code raises :class:`~gpt_sovits_train.interchange.safe_load.UnsafeCheckpointError`."""
        fs, local_path = fsspec.core.url_to_fs(str(path))
        if isinstance(fs, LocalFileSystem):
            return load_checkpoint(local_path, map_location=map_location or "cpu", droppable=HYPERPARAMETER_KEYS)
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpointError(
                f"refused to load {path}: it holds pickled objects that are not plain training state; nothing was "
                "executed. Only resume from checkpoints you trust"
            ) from error

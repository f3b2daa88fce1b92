"""One training process per run folder.

Two ``gst-train`` processes writing the same folder interleave checkpoints (``last.ckpt`` / ``last-v1.ckpt``) and
results. The launching process (global rank 0; DDP children and other SLURM tasks share the folder on purpose)
holds an OS file lock on ``<run folder>/.run.lock`` while it trains: ``filelock`` takes it with ``fcntl``/
``msvcrt``, so it dies with the process (``kill -9``, preemption) and a requeued job simply takes it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".run.lock"


class RunFolderInUseError(RuntimeError):
    """Another live process trains into this run folder."""


def is_launching_process() -> bool:
    """True for the process that owns the run folder: not a DDP child (``LOCAL_RANK`` > 0 or ``RANK`` > 0) and not
    a SLURM task other than the first."""
    return all(int(os.environ.get(variable, "0") or 0) == 0 for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


@contextmanager
def run_folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s lock for the duration (only in the launching process); refuse at once when taken."""
    if not is_launching_process():
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunFolderInUseError(
            f"run folder {folder} is in use by another gst-train process; wait for it, or pick another folder "
            "(hydra.run.dir=...)"
        ) from None
    try:
        yield
    finally:
        lock.release()

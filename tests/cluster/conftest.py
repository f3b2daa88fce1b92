"""Live cluster fixtures: a one-node SLURM cluster started for the session (see ``slurm.py``).

Without root or the Debian packages the tests skip with a message saying how to run them; in CI (``CI=true``)
that skip is a failure instead, so the live tests cannot silently stop running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import add_to_summary

from .slurm import LocalSlurm, missing_requirements

_PENDING: list[str] = []  # summary lines not attached to a test yet (the cluster's start-up, a test's own phases)


class _LiveTimings:
    """``LIVE_TIMINGS.append((label, seconds))`` inside a live test: printed in the summary with that test's time
    (``live_timer`` attaches it to the test's report, which reaches the printing process under xdist)."""

    def append(self, entry: tuple[str, float]) -> None:
        label, seconds = entry
        _PENDING.append(f"{seconds:7.1f} s  {label}")


LIVE_TIMINGS = _LiveTimings()


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI, where the live tests must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[LocalSlurm]:
    """slurmctld + slurmd + munged for this host, up and idle; stopped after the session."""
    reason = missing_requirements()
    if reason is not None:
        skip_or_fail(reason)
    # Not under pytest's tmp folder: that one is private to root (0700) and munged runs as the munge user.
    root = Path(tempfile.mkdtemp(prefix="gst-slurm-"))
    cluster = LocalSlurm(root)
    started = time.monotonic()
    try:
        cluster.start()
        seconds = time.monotonic() - started
        _PENDING.append(f"{seconds:7.1f} s  slurm cluster start (munged, slurmctld, slurmd up and idle)")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def live_timer(request) -> Iterator[None]:
    """Record each live test's wall time; printed in the terminal summary (pytest captures test output)."""
    started = time.monotonic()
    yield
    for line in [*_PENDING, f"{time.monotonic() - started:7.1f} s  {request.node.nodeid}"]:
        add_to_summary(request.node, "live cluster test timings", line)
    _PENDING.clear()


@pytest.fixture(scope="session")
def cluster_shards(demo_shards):
    """The suite's demo shards (tests/conftest.py), under the name the cluster tests use."""
    return demo_shards

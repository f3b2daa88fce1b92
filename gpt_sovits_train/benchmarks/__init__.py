"""Benchmarks layer (top, beside cli): one module per area, each exposing ``run_<name>(quick=False) -> dict`` (see
scripts/bench.py); may import every layer below."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """Process high-water mark in MB (``ru_maxrss`` is KiB on Linux, bytes on macOS); it includes whatever ran
    earlier in the same process, so memory figures come from one benchmark per process."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024

"""The cloning benchmark runs in quick mode and reports finite figures."""

from __future__ import annotations

import json
import math

from gpt_sovits_train.benchmarks.clone import run_clone_frontend


def test_clone_frontend_benchmark_quick() -> None:
    figures = run_clone_frontend(quick=True)
    json.dumps(figures)
    assert figures["segments"] >= 1
    assert all(math.isfinite(v) and v >= 0 for k, v in figures.items() if k.endswith("_rtf"))

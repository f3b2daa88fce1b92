"""Smoke run of the DDP scaling benchmark (figures come from scripts/bench.py, never asserted as speed)."""

from __future__ import annotations

import json

import pytest

from gpt_sovits_train.benchmarks.scaling import run_ddp_scaling

pytestmark = [pytest.mark.slow, pytest.mark.ddp]


def test_quick_ddp_scaling_reports_figures():
    result = run_ddp_scaling(quick=True)
    json.dumps(result)  # JSON-able for scripts/bench.py
    assert result["world_size"] == 2 and result["backend"] in {"gloo", "nccl"}
    assert result["samples_per_sec_1"] > 0 and result["samples_per_sec_2"] > 0
    assert result["scaling_efficiency"] > 0 and result["device"]

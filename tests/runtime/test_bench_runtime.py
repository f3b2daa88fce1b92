"""Benchmark plumbing for issue 18: machine bounds are measured and every decode figure gets its fraction of the
bandwidth bound; the per-runtime benchmarks run at quick size (figures are reported, never asserted on)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gpt_sovits_train.benchmarks import runtime as bench_runtime
from gpt_sovits_train.benchmarks.machine import BYTES_PER_WEIGHT, decode_bound, gpt_step_weight_count, machine_bounds
from gpt_sovits_train.runtime.cpu import REPORTED_FLAGS


def _bench_script():
    path = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"
    spec = importlib.util.spec_from_file_location("bench_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_machine_bounds_are_measured_in_this_process() -> None:
    bounds = machine_bounds(quick=True)
    assert set(bounds["isa"]) == set(REPORTED_FLAGS)
    assert bounds["read_bandwidth_gbs"] > 0 and bounds["gemm_fp32_gflops"] > 0 and bounds["gemm_bf16_gflops"] > 0
    json.dumps(bounds)


def test_v2_step_reads_77m_weights_and_the_bound_follows_bytes_per_weight() -> None:
    weights = gpt_step_weight_count(512, 24)
    assert weights == 24 * 12 * 512 * 512 + 1025 * 512  # 76.0 M: 304 MB in fp32, as PERFORMANCE.md counts
    fp32 = decode_bound(30.0, weights, "fp32", 20.0)
    int8 = decode_bound(30.0, weights, "int8", 20.0)
    assert fp32["weight_mb_per_step"] == pytest.approx(weights * 4 / 1e6, rel=1e-3)
    assert int8["bound_tokens_per_s"] == pytest.approx(4 * fp32["bound_tokens_per_s"], rel=1e-3)
    assert fp32["fraction_of_bound"] == pytest.approx(30.0 / fp32["bound_tokens_per_s"], abs=1e-3)
    assert BYTES_PER_WEIGHT["int4"] > 0.5  # block scales are bytes too


def test_bench_annotates_every_runtime_decode_with_its_bound() -> None:
    figures = bench_runtime.run_gpt_decode_b1_runtimes(quick=True)
    assert "torch-fp32" in figures["engines"]
    for engine in figures["engines"].values():
        assert engine["tokens_per_s"] > 0 and engine["first_chunk_tokens_s"] > 0
    results = {"gpt_decode_b1_runtimes": figures, "gpt_decode_b1": {"size": "v2", "tokens_per_s": 30.0, "batch": 1}}
    _bench_script().annotate_bounds(results, bandwidth_gbs=20.0)
    for engine in figures["engines"].values():
        bound = engine["bound"]
        assert bound["bound_tokens_per_s"] > 0
        expected = engine["tokens_per_s"] / bound["bound_tokens_per_s"]
        assert bound["fraction_of_bound"] == pytest.approx(expected, abs=1e-3)
    assert results["gpt_decode_b1"]["bound"]["weight_mb_per_step"] == pytest.approx(304.1, abs=0.1)


def test_reference_ratios_cover_the_table_rows() -> None:
    results = {
        "gpt_decode_b1_runtimes": {"engines": {"ort-int8": {"tokens_per_s": 60.0}}},
        "gpt_decode_b8": {"tokens_per_s": 200.0},
        "sovits_decode": {"rtf": 0.3},
        "e2e_runtimes": {"engines": {"ort-int8": {"rtf": 0.5}}},
    }
    reference = {
        "reference_gpt_decode_b1": {"tokens_per_s": 30.0},
        "reference_gpt_decode_b8": {"tokens_per_s": 100.0},
        "reference_sovits_decode": {"rtf": 0.6},
    }
    ratios = _bench_script().reference_ratios(results, reference)
    assert ratios["gpt_decode_b1[ort-int8]_speed"] == 2.0 and ratios["gpt_decode_b8_speed"] == 2.0
    assert ratios["sovits_decode_time"] == 0.5
    assert ratios["reference_e2e_rtf"] == pytest.approx(250 / 30 / 10 + 0.6, abs=1e-4)
    assert ratios["e2e_rtf[ort-int8]_time"] == pytest.approx(0.5 / ratios["reference_e2e_rtf"], abs=1e-3)

"""Smoke run of the end-to-end benchmark at quick size (figures are reported, never asserted on)."""

from __future__ import annotations

import json

import pytest

from gpt_sovits_train.benchmarks.e2e import e2e_figures, random_gpt_weights


@pytest.mark.parametrize(("precision", "gpt_precision"), [("fp32", "bf16-weights"), ("bf16", "fp32")])
def test_quick_benchmark_reports_stages(precision: str, gpt_precision: str) -> None:
    figures = e2e_figures(quick=True, precision=precision, gpt_precision=gpt_precision)
    assert figures["gpt_precision"] == gpt_precision
    json.dumps(figures)  # JSON-able for scripts/bench.py
    assert set(figures["stage_rtf"]) == {"frontend", "gpt", "sovits"}
    assert figures["gpt_tokens_per_s"] > 0 and figures["rtf"] > 0 and figures["first_chunk_latency_s"] > 0
    assert 0 < figures["sovits_share"] < 1 and figures["sovits_precision"] == precision


def test_random_weights_follow_manifest_layout(ref_dir) -> None:
    manifest = json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"]["t2s_v2"]
    weights = random_gpt_weights(512, 24)
    expected = {entry["key"]: tuple(entry["shape"]) for entry in manifest["state_dict"]}
    assert {k: tuple(v.shape) for k, v in weights.items()} == expected

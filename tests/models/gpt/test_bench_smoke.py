"""The GPT benchmark functions run (quick mode) and return JSON-able figures."""

from __future__ import annotations

import json

from gpt_sovits_train.benchmarks import gpt as bench


def test_quick_benchmarks_return_json_figures():
    for run in (bench.run_gpt_train, bench.run_gpt_decode_b1, bench.run_gpt_decode_b8):
        figures = json.loads(json.dumps(run(quick=True)))
        assert figures["size"] == "tiny"
        assert figures["peak_rss_mb"] > 0
        assert figures.get("tokens_per_s", figures.get("semantic_tokens_per_s")) > 0
    assert bench.run_gpt_decode_b1(quick=True)["step_weights"] == "float32"
    assert bench.run_gpt_decode_b1_bf16_weights(quick=True)["step_weights"] == "bfloat16"

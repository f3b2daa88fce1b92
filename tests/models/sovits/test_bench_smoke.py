"""The SoVITS benchmark functions run (quick mode) and return JSON-able figures."""

from __future__ import annotations

import json

from gpt_sovits_train.benchmarks import sovits as bench


def test_quick_sovits_decode_returns_json_figures_for_the_prepared_network():
    figures = json.loads(json.dumps(bench.run_sovits_decode(quick=True)))
    assert figures["quick"] and figures["prepared_for_inference"]
    assert figures["audio_s"] > 0 and 0 < figures["rtf_min"] <= figures["rtf"]
    assert figures["peak_rss_mb"] > 0

"""The data benchmarks run (quick sizes) and report positive rates."""

from __future__ import annotations

from gpt_sovits_train.benchmarks.data import run_datamodule, run_prepare


def test_prepare_benchmark_reports_rates():
    figures = run_prepare(quick=True)
    assert figures["utterances"] == 4 and figures["utterances_per_s"] > 0 and figures["audio_seconds_per_s"] > 0


def test_datamodule_benchmark_reports_rates():
    figures = run_datamodule(quick=True)
    assert figures["sovits_samples_per_s"] > 0 and figures["gpt_samples_per_s"] > 0

"""The text benchmark runs and reports a figure per language (speed itself is never asserted)."""

from __future__ import annotations

from gpt_sovits_train.benchmarks.text import run_text_frontend


def test_quick_benchmark_reports_every_language() -> None:
    figures = run_text_frontend(quick=True)
    for language in ("zh", "en", "ja", "ko", "auto"):
        assert figures[language]["sentences"] > 0
        assert figures[language]["sentences_per_s"] > 0

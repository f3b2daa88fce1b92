"""Benchmarks: one module per area, each exposing ``run_<name>(quick=False) -> dict``; see scripts/bench.py."""

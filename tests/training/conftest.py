"""Helpers for training tests: the stage overrides every run uses, and ``gst-train`` as a subprocess (what DDP and
signal tests need). The demo shards they train on are the suite's ``demo_shards`` (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gpt_sovits_train.training.resolvers  # noqa: F401
from tests.helpers import compose_train, prepare_demo_shards, stages  # noqa: F401  (re-exported to this folder)

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def run_train_cli(overrides: list[str], run_dir: Path, timeout: float = 240.0,
                  env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run ``python -m gpt_sovits_train.cli.train`` with overrides; returns the process and rank 0's result."""
    command = [sys.executable, "-m", "gpt_sovits_train.cli.train", f"hydra.run.dir={run_dir}", *overrides]
    full_env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    result_file = run_dir / "train_result.json"
    return proc, json.loads(result_file.read_text()) if result_file.is_file() else None


def stage_overrides(stage: str, shards: Path) -> list[str]:
    """Tiny network preset + the demo shards for one stage (``gpt`` or ``sovits``), single CPU process.

    Batches of 2 make an epoch of the 14 training utterances 7 steps long, so checkpoints land mid-epoch."""
    small_discriminator = ["model.discriminator.max_channels=64"] if stage == "sovits" else []
    return [f"model={stage}", f"model/{stage}@model.net=tiny", f"data.shards={shards}", "trainer=cpu",
            "data.num_workers=0", "data.batching.max_batch_size=2", "data.val_batching.max_batch_size=2",
            *small_discriminator]


def quiet_overrides() -> list[str]:
    """No progress bar or W&B in subprocess tests (their output is captured, not watched)."""
    return ["logger=csv", "trainer.enable_progress_bar=false", "~callbacks.progress_bar"]

"""Fixtures for training tests: demo shards made by the real prepare code with random-init extractors,
and a helper that runs ``gst-train`` as a subprocess (what DDP and signal tests need)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import gpt_sovits_train.training.resolvers  # noqa: F401
from tests.helpers import compose_train, stages  # noqa: F401  (re-exported to the tests of this folder)

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
DEMO = REPO / "data" / "demo"
UTTERANCES_PER_SPEAKER = 8


def _demo_subset(target: Path, per_speaker: int) -> Path:
    """A .list with the first ``per_speaker`` lines of each demo speaker, audio paths made absolute."""
    taken: dict[str, int] = {}
    lines = []
    for line in (DEMO / "demo.list").read_text(encoding="utf-8").splitlines():
        fields = line.split("|")
        if len(fields) < 4 or taken.get(fields[1], 0) >= per_speaker:
            continue
        taken[fields[1]] = taken.get(fields[1], 0) + 1
        lines.append("|".join([str((DEMO / fields[0]).resolve()), *fields[1:]]))
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def prepare_demo_shards(root: Path, per_speaker: int, chunk: int, with_encodec: bool = False) -> Path:
    """Run the real prepare on ``per_speaker`` demo utterances per speaker with random-init extractors (EnCodec too
    when ``with_encodec``), writing ``root/shards``; returns that folder."""
    from gpt_sovits_train.data.prepare import prepare
    from gpt_sovits_train.features.random_init import make_all

    make_all(root / "random_models", seed=0, with_encodec=with_encodec)
    corpus = _demo_subset(root / "subset.list", per_speaker)
    features = "random_init_encodec" if with_encodec else "random_init"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("prepare", overrides=[
            f"prepare/features@features={features}", f"random_models={root / 'random_models'}",
            f"input.path={corpus}", f"output_dir={root / 'shards'}", "progress=false",
            "split.val_min_per_speaker=1", f"shards.utterances_per_chunk={chunk}",
        ])
    GlobalHydra.instance().clear()
    prepare(cfg)
    return root / "shards"


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory) -> Path:
    """WebDataset shards of 16 demo utterances (2 speakers), features from small random-init models."""
    return prepare_demo_shards(tmp_path_factory.mktemp("demo_data"), UTTERANCES_PER_SPEAKER, chunk=4)


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

"""``gst-train`` as users run it: a crafted resume checkpoint is refused (exit 2, one line, nothing executed), and a
token passed as an override reaches no file the run writes (Hydra's copies, resolved config, CSV and W&B logs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from .conftest import quiet_overrides, run_train_cli, stage_overrides

pytestmark = pytest.mark.slow

SECRET = "hf_test_secret_8d1f0c"


class _Payload:
    """Unpickling this creates ``marker`` through ``pathlib.Path.touch``: what a crafted last.ckpt does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_resume_checkpoint_refused_with_exit_2(demo_shards, tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "global_step": 1, "epoch": 0, "loops": {"fit_loop": _Payload(marker)}}, crafted)
    overrides = [
        *stage_overrides("gpt", demo_shards),
        *quiet_overrides(),
        "trainer.max_steps=2",
        "trainer.limit_val_batches=0",
        f"ckpt_path={crafted}",
    ]
    proc, result = run_train_cli(overrides, tmp_path / "run", timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not marker.exists()
    assert result is None  # no "finished" report
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: refused to load") and "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_token_override_reaches_no_written_file(demo_shards, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [
        *stage_overrides("gpt", demo_shards),
        "logger=wandb",
        "+logger.csv._target_=lightning.pytorch.loggers.CSVLogger",
        f"+logger.csv.save_dir={run_dir}",
        "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=0",
        f"+hf_token={SECRET}",
        f"+wandb_api_key={SECRET}",
    ]
    proc, _ = run_train_cli(overrides, run_dir, timeout=600, env={"WANDB_MODE": "offline", "WANDB_DIR": str(run_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.relative_to(run_dir).as_posix() for p in written}
    for expected in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "resolved_config.yaml"):
        assert expected in names, sorted(names)
    assert any(name.endswith(".wandb") for name in names), sorted(names)  # the W&B run's own record
    assert any(name.endswith("hparams.yaml") for name in names), sorted(names)
    leaked = [p for p in written if SECRET.encode() in p.read_bytes()]
    assert leaked == []
    assert "hf_token: <redacted>" in (run_dir / "resolved_config.yaml").read_text()
    log = (run_dir / "train.log").read_text()
    assert log.count("redacted secret-looking values") == 1 and SECRET not in proc.stdout + proc.stderr + log
    assert os.environ.get("WANDB_API_KEY") != SECRET

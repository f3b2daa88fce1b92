"""Two CPU processes (gloo) train each stage for one epoch: ranks end with identical weights, and the data
they saw is disjoint and covers the whole training split."""

from __future__ import annotations

import json

import pytest

from .conftest import quiet_overrides, run_train_cli, stage_overrides, stages

pytestmark = [pytest.mark.slow, pytest.mark.ddp]


@pytest.mark.parametrize("stage", stages("gpt", "sovits"))
def test_two_process_ddp_on_cpu(stage, demo_shards, tmp_path):
    overrides = [*stage_overrides(stage, demo_shards), *quiet_overrides(), "trainer=ddp_cpu", "trainer.max_steps=-1",
                 "trainer.max_epochs=1", "trainer.limit_val_batches=0", "~callbacks.best_checkpoint",
                 "+callbacks.data_position.record_keys_to=" + str(tmp_path / "seen")]
    proc, result = run_train_cli(overrides, tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank1 = json.loads((tmp_path / "train_result.rank1.json").read_text())
    assert result["world_size"] == rank1["world_size"] == 2
    assert result["strategy"] == "RendezvousDDPStrategy"
    assert result["weights_fingerprint"] == rank1["weights_fingerprint"]

    seen = {rank: set((tmp_path / "seen" / f"rank{rank}.txt").read_text().split()) for rank in (0, 1)}
    assert seen[0] and seen[1]
    assert not seen[0] & seen[1], "a sample was trained on by both ranks in one epoch"
    train_keys = {json.loads(line)["key"] for line in (demo_shards / "train.index.jsonl").read_text().splitlines()}
    assert seen[0] | seen[1] == train_keys, "one epoch over 2 ranks must cover every training sample"

"""AtomicCheckpointIO: the target is either the old complete checkpoint or the new one, never a torn file."""

from __future__ import annotations

import pytest
import torch

from gpt_sovits_train.training.checkpoint_io import TEMP_SUFFIX, AtomicCheckpointIO, atomic_torch_save


class _FailsWhenPickled:
    """An object torch.save cannot serialize: simulates a crash in the middle of writing a checkpoint."""

    def __reduce__(self):
        raise RuntimeError("disk full (simulated)")


def test_save_and_load_round_trip(tmp_path):
    io = AtomicCheckpointIO()
    target = tmp_path / "nested" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "global_step": 7}, target)
    loaded = io.load_checkpoint(target)
    assert loaded["global_step"] == 7
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))


def test_failed_write_keeps_previous_checkpoint_and_leaves_no_temp(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"global_step": 1, "w": torch.ones(3)}, target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"global_step": 2, "w": torch.zeros(3), "bad": _FailsWhenPickled()}, target)
    assert target.read_bytes() == before
    assert torch.load(target)["global_step"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_storage_options_rejected_with_advice(tmp_path):
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({}, tmp_path / "x.ckpt", storage_options={"a": 1})

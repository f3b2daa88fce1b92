"""AtomicCheckpointIO: the target is either the old complete checkpoint or the new one, never a torn file."""

from __future__ import annotations

import os

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


class _RunsCode:
    """What a crafted ``last.ckpt`` carries: unpickling it calls ``os.mkdir`` (a side effect visible on disk)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_crafted_resume_checkpoint_is_refused_not_executed(tmp_path):
    """Lightning asks the IO for weights_only=False when a config says so; the code still must not run."""
    from gpt_sovits_train.interchange.safe_load import UnsafeCheckpointError

    marker = tmp_path / "executed"
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"net.w": torch.ones(2)}, "global_step": 3, "loops": {"x": _RunsCode(marker)}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*loops\.x") as error:
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()
    assert "\n" not in str(error.value)


def test_own_checkpoint_hyperparameters_are_plain_data(tmp_path):
    """Hydra partials and ListConfigs in hyper_parameters are written as data, so plain weights_only loads work."""
    import functools

    from omegaconf import OmegaConf

    hparams = {"optimizer": functools.partial(torch.optim.AdamW, lr=1e-4, betas=OmegaConf.create([0.8, 0.99])),
               "freeze": OmegaConf.create(["quantizer"]), "c_mel": 45.0}
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": hparams}, target)
    loaded = torch.load(target, weights_only=True)
    assert loaded["hyper_parameters"] == {
        "optimizer": {"_target_": "torch.optim.adamw.AdamW", "_partial_": True, "lr": 1e-4, "betas": [0.8, 0.99]},
        "freeze": ["quantizer"], "c_mel": 45.0}


def test_checkpoint_from_before_plain_hyperparameters_still_resumes(tmp_path):
    """Older checkpoints of ours hold partials in hyper_parameters: those are dropped, all training state loads."""
    import functools

    path = tmp_path / "old.ckpt"
    state = {"state_dict": {"net.w": torch.ones(2)}, "optimizer_states": [{"state": {}, "param_groups": []}],
             "hyper_parameters": {"optimizer": functools.partial(torch.optim.AdamW, lr=1e-4)}, "global_step": 9}
    torch.save(state, path)
    loaded = AtomicCheckpointIO().load_checkpoint(path)
    assert set(loaded) == {"state_dict", "optimizer_states", "global_step"} and loaded["global_step"] == 9

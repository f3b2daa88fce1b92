"""Small contracts of the train() plumbing: resume-path validation and the callback/logger list builders."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import OmegaConf

from gpt_sovits_train.training.instantiate import instantiate_callbacks, instantiate_loggers
from gpt_sovits_train.training.run import resolve_ckpt_path, weights_fingerprint


def test_missing_checkpoint_is_an_error_with_advice(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_path=last"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"))
    assert resolve_ckpt_path(None) is None
    assert resolve_ckpt_path("last") == "last"
    existing = tmp_path / "a.ckpt"
    existing.write_bytes(b"x")
    assert resolve_ckpt_path(str(existing)) == str(existing)


def test_callback_mapping_becomes_list_and_null_entries_are_dropped():
    cfg = OmegaConf.create({"lr": {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor"}, "off": None})
    callbacks = instantiate_callbacks(cfg)
    assert len(callbacks) == 1 and isinstance(callbacks[0], LearningRateMonitor)
    assert instantiate_callbacks(None) == [] and instantiate_loggers(None) == []


def test_entries_without_target_or_of_wrong_type_are_rejected():
    with pytest.raises(ValueError, match="_target_"):
        instantiate_callbacks(OmegaConf.create({"bad": {"foo": 1}}))
    with pytest.raises(TypeError, match="not a Logger"):
        instantiate_loggers(OmegaConf.create({"x": {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor"}}))


def test_weights_fingerprint_sees_any_change():
    layer = torch.nn.Linear(3, 2)
    before = weights_fingerprint(layer)
    assert weights_fingerprint(layer) == before
    with torch.no_grad():
        layer.weight[0, 0] += 1e-7
    assert weights_fingerprint(layer) != before

"""Weights reach a network from Lightning checkpoints, safetensors and v2 files, with readable mismatch errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from gpt_sovits_train.inference.loading import load_network, network_weights
from gpt_sovits_train.interchange.gpt_sovits_v2 import V2FormatError


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_lightning_checkpoint_and_safetensors(tmp_path: Path) -> None:
    source = _net()
    lightning = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, lightning)
    target = load_network(_net(), lightning, "gpt")
    assert not target.training
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)
    exported = tmp_path / "gpt.safetensors"
    save_file(source.state_dict(), str(exported))
    assert set(network_weights(exported, "gpt")) == set(source.state_dict())


def test_mismatch_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"0.weight": torch.zeros(5, 3), "0.bias": torch.zeros(4), "9.weight": torch.zeros(1)}, str(path))
    with pytest.raises(V2FormatError) as error:
        load_network(_net(), path, "gpt")
    message = str(error.value)
    assert "2.weight" in message and "9.weight" in message and "0.weight: file (5, 3) vs model (4, 3)" in message


def test_bad_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind must be"):
        network_weights(tmp_path / "x", "vocoder")

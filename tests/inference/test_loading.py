"""Weights reach a network from Lightning checkpoints, safetensors and v2 files, with readable mismatch errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
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


def _crafted_run(tmp_path: Path, net: dict) -> Path:
    """A downloaded "run folder": a checkpoint of ours and a resolved_config.yaml whose model.net is ``net``."""
    import yaml

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in _net().state_dict().items()}}, checkpoint)
    (run / "resolved_config.yaml").write_text(yaml.safe_dump({"model": {"net": net}}))
    return checkpoint


@pytest.mark.parametrize(
    ("net", "refused"),
    [
        ({"_target_": "builtins.open", "file": "{victim}", "mode": "w"}, "builtins.open"),
        ({"_target_": "shutil.copyfile", "src": "{source}", "dst": "{victim}"}, "shutil.copyfile"),
        # nested: the outer target is ours, the inner one is not
        ({"_target_": "gpt_sovits_train.models.gpt.model.Text2SemanticModel",
          "config": {"_target_": "shutil.copyfile", "src": "{source}", "dst": "{victim}"}}, "config._target_"),
        # resolves through an import inside our module to a function that is not ours
        ({"_target_": "gpt_sovits_train.models.gpt.model.torch.save", "obj": 1, "f": "{victim}"}, "torch.save"),
    ],
)
def test_resolved_config_beside_checkpoint_cannot_run_code(tmp_path: Path, net: dict, refused: str) -> None:
    from gpt_sovits_train.inference.loading import build_network
    from gpt_sovits_train.interchange.safe_config import UnsafeConfigError

    victim, source = tmp_path / "victim.txt", tmp_path / "source.txt"
    victim.write_text("precious")
    source.write_text("attacker")
    filled = json.loads(json.dumps(net).replace("{victim}", str(victim)).replace("{source}", str(source)))
    checkpoint = _crafted_run(tmp_path, filled)
    with pytest.raises(UnsafeConfigError, match=rf"refused .*resolved_config\.yaml.*{re.escape(refused)}"):
        build_network(None, checkpoint, "gpt")
    assert victim.read_text() == "precious"


def test_resolved_config_interpolation_refused(tmp_path: Path) -> None:
    from gpt_sovits_train.inference.loading import build_network
    from gpt_sovits_train.interchange.safe_config import UnsafeConfigError

    checkpoint = _crafted_run(tmp_path, {"_target_": "gpt_sovits_train.models.gpt.model.GPTConfig",
                                         "hidden_dim": "${oc.env:HOME}"})
    with pytest.raises(UnsafeConfigError, match="interpolation"):
        build_network(None, checkpoint, "gpt")


def test_resolved_config_of_our_own_preset_builds(tmp_path: Path) -> None:
    """The happy path: a real preset's model.net beside a checkpoint still builds the network from it."""
    from hydra import compose, initialize_config_dir

    from gpt_sovits_train.inference.loading import build_network, network_config_beside
    from gpt_sovits_train.interchange.checkpoints import network_weights

    conf = Path(__file__).resolve().parents[2] / "conf" / "model" / "gpt"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        preset = OmegaConf.to_container(compose(config_name="tiny"), resolve=True)
    checkpoint = _crafted_run(tmp_path, preset)
    from hydra.utils import instantiate

    network = instantiate(preset)
    torch.save({"state_dict": {f"net.{k}": v for k, v in network.state_dict().items()}}, checkpoint)
    assert network_config_beside(checkpoint) == preset
    built = build_network(None, checkpoint, "gpt")
    for key, value in network_weights(checkpoint, "gpt").items():
        assert torch.equal(built.state_dict()[key], value)


def test_v2_gpt_file_is_deserialized_once_per_synthesizer_build(tmp_path: Path, monkeypatch) -> None:
    """The cached backend needs the weights and the head count: both come from one read of the file."""
    from gpt_sovits_train.inference.factory import build_gpt_generate
    from gpt_sovits_train.interchange.gpt_sovits_v2 import gpt_v2_config, write_gpt_v2
    from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel

    config = GPTConfig(embedding_dim=16, hidden_dim=16, num_heads=2, num_layers=1, ffn_dim=64)
    weights = Text2SemanticModel(config).state_dict()
    path = write_gpt_v2(weights, gpt_v2_config(weights, heads=2), tmp_path / "s1v2.ckpt")
    reads: list[str] = []
    real_load = torch.load

    def counting_load(source, *args, **kwargs):
        reads.append(str(source))
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    generate = build_gpt_generate({"checkpoint": str(path), "backend": "cached"}, torch.device("cpu"))
    assert reads == [str(path)]
    assert generate.decoder.decoder.model.cfg.num_heads == 2

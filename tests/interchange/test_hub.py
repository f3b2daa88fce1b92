"""Publishing assembles safetensors + config + card locally; a dry run never needs a token or the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from gpt_sovits_train.audio.ai_metadata import AI_NOTICE
from gpt_sovits_train.interchange.hub import (
    PUBLISHED_FILES,
    TrainingDataSummary,
    prepare_publish_folder,
    publish_folder,
)


def _manifest(tmp_path: Path) -> Path:
    (tmp_path / "train.index.jsonl").write_text(
        "\n".join(
            json.dumps({"key": f"u{i}", "speaker": "ava", "language": lang}) for i, lang in enumerate(["en", "zh"])
        )
    )
    manifest = {
        "written": 2,
        "hours": 0.002,
        "speakers": {"ava": {}},
        "splits": {"train": {"index": "train.index.jsonl"}},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_dry_run_writes_complete_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_never_logged")
    data = TrainingDataSummary.from_manifest(_manifest(tmp_path))
    assert (data.utterances, data.speakers, data.languages) == (2, 1, ["en", "zh"])
    gpt = {"bert_proj.weight": torch.randn(4, 8)}
    sovits = {"dec.conv_pre.weight": torch.randn(2, 2, 1), "enc_q.pre.weight": torch.randn(2, 2, 1)}
    folder = prepare_publish_folder(tmp_path / "out", gpt, sovits, {"model": {"hidden": 4}}, data, {"cer": 0.12})
    assert publish_folder(folder, "user/voice", dry_run=True) == str(folder)
    assert torch.equal(load_file(str(folder / "gpt.safetensors"))["bert_proj.weight"], gpt["bert_proj.weight"])
    assert set(load_file(str(folder / "sovits.safetensors"))) == {"dec.conv_pre.weight"}
    assert yaml.safe_load((folder / "config.yaml").read_text()) == {"model": {"hidden": 4}}
    card = (folder / "README.md").read_text()
    for needle in (AI_NOTICE, "| utterances | 2 |", "| cer | 0.12 |", "Intended use", "en, zh"):
        assert needle in card
    for file in folder.iterdir():
        assert "hf_secret_value_never_logged" not in file.read_bytes().decode("latin-1")


def test_real_publish_without_token_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(RuntimeError, match="set HF_TOKEN"):
        publish_folder(tmp_path, "user/voice", dry_run=False)


def test_cli_dry_run(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    save_file({"bert_proj.weight": torch.ones(2, 2)}, str(tmp_path / "gpt.safetensors"))
    save_file({"dec.conv_pre.weight": torch.ones(2, 2)}, str(tmp_path / "sovits.safetensors"))
    manifest = _manifest(tmp_path)
    out = tmp_path / "folder"
    command = [
        sys.executable,
        "-m",
        "gpt_sovits_train.cli.publish",
        "repo_id=me/voice",
        f"gpt_checkpoint={tmp_path / 'gpt.safetensors'}",
        f"sovits_checkpoint={tmp_path / 'sovits.safetensors'}",
        f"dataset_manifest={manifest}",
        f"output_dir={out}",
        "+hf_token=hf_override_secret",
    ]
    run = subprocess.run(
        command,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_TOKEN": "hf_do_not_print"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "hf_do_not_print" not in run.stdout + run.stderr
    # exactly what is uploaded: no logs, no Hydra folder; the config holds no secret and no local absolute path
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == sorted(PUBLISHED_FILES)
    config_text = (out / "config.yaml").read_text()
    assert "hf_override_secret" not in config_text and "hf_token: <redacted>" in config_text
    assert str(tmp_path) not in config_text and str(repo) not in config_text
    assert yaml.safe_load(config_text)["gpt_checkpoint"] == "gpt.safetensors"
    assert "| utterances | 2 |" in (out / "README.md").read_text()

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
    configs = {"gpt": {"model": {"hidden": 4}}, "sovits": {"model": {"hidden": 8}}}
    folder = prepare_publish_folder(tmp_path / "out", gpt, sovits, configs, data, {"cer": 0.12})
    assert publish_folder(folder, "user/voice", dry_run=True) == str(folder)
    assert torch.equal(load_file(str(folder / "gpt/model.safetensors"))["bert_proj.weight"], gpt["bert_proj.weight"])
    assert set(load_file(str(folder / "sovits/model.safetensors"))) == {"dec.conv_pre.weight"}
    for stage in ("gpt", "sovits"):
        assert yaml.safe_load((folder / stage / "resolved_config.yaml").read_text()) == configs[stage]
    card = (folder / "README.md").read_text()
    for needle in (AI_NOTICE, "| utterances | 2 |", "| cer | 0.12 |", "Intended use", "en, zh"):
        assert needle in card
    for file in folder.rglob("*.*"):
        assert "hf_secret_value_never_logged" not in file.read_bytes().decode("latin-1")


def test_real_publish_without_token_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(RuntimeError, match="set HF_TOKEN"):
        publish_folder(tmp_path, "user/voice", dry_run=False)


def _training_runs(tmp_path: Path) -> dict[str, Path]:
    """A checkpoint per stage inside a gst-train-shaped run folder (``resolved_config.yaml`` beside
    ``checkpoints/``)."""
    checkpoints = {}
    for stage, key in (("gpt", "bert_proj.weight"), ("sovits", "dec.conv_pre.weight")):
        run = tmp_path / f"{stage}_run"
        (run / "checkpoints").mkdir(parents=True)
        config = {"model": {"stage": stage}, "trainer": {"max_steps": 3}}
        (run / "resolved_config.yaml").write_text(yaml.safe_dump(config))
        checkpoints[stage] = run / "checkpoints" / "last.safetensors"
        save_file({key: torch.ones(2, 2)}, str(checkpoints[stage]))
    return checkpoints


def _publish(*overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "gpt_sovits_train.cli.publish", "repo_id=me/voice", *overrides]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_TOKEN": "hf_do_not_print", **(env or {})})


def test_cli_dry_run(tmp_path: Path) -> None:
    """The folder holds each stage's TRAINING config beside its weights (it used to hold the publish config)."""
    checkpoints = _training_runs(tmp_path)
    out = tmp_path / "folder"
    run = _publish(f"gpt_checkpoint={checkpoints['gpt']}", f"sovits_checkpoint={checkpoints['sovits']}",
                   f"dataset_manifest={_manifest(tmp_path)}", f"output_dir={out}", f"hydra.run.dir={tmp_path / 'hy'}",
                   "+hf_token=hf_override_secret")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "hf_do_not_print" not in run.stdout + run.stderr
    # exactly what is uploaded: no logs, no Hydra folder; the configs hold no secret and no local absolute path
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(PUBLISHED_FILES)
    repo = Path(__file__).resolve().parents[2]
    assert not any("hf_override_secret" in p.read_text(errors="ignore") for p in out.rglob("*.yaml"))
    for stage in ("gpt", "sovits"):
        config_text = (out / stage / "resolved_config.yaml").read_text()
        assert yaml.safe_load(config_text)["model"] == {"stage": stage}
        assert str(tmp_path) not in config_text and str(repo) not in config_text
    assert "| utterances | 2 |" in (out / "README.md").read_text()


def test_cli_refuses_checkpoint_without_training_config(tmp_path: Path) -> None:
    save_file({"bert_proj.weight": torch.ones(2, 2)}, str(tmp_path / "gpt.safetensors"))
    checkpoints = _training_runs(tmp_path)
    run = _publish(f"gpt_checkpoint={tmp_path / 'gpt.safetensors'}", f"sovits_checkpoint={checkpoints['sovits']}",
                   f"output_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'hy'}")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "resolved_config.yaml" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_cli_publish_without_network_is_one_line(tmp_path: Path) -> None:
    """dry_run=false with no reachable Hub: one line naming what to check, exit 2 (issue 15 item 18)."""
    checkpoints = _training_runs(tmp_path)
    run = _publish(f"gpt_checkpoint={checkpoints['gpt']}", f"sovits_checkpoint={checkpoints['sovits']}",
                   f"output_dir={tmp_path / 'out'}", "dry_run=false", f"hydra.run.dir={tmp_path / 'hy'}",
                   env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"})
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert len(run.stderr.strip().splitlines()) == 1 and "network" in run.stderr
    assert "hf_do_not_print" not in run.stdout + run.stderr

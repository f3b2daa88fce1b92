"""The workflow's own steps (slice, transcribe, reference) on a demo speaker treated as a raw recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpt_sovits_train.clone.transcribe import read_list
from gpt_sovits_train.clone.workflow import CloneWorkflow, compose_config

LATER = ["prepare", "train_sovits", "train_gpt", "bundle", "sample"]


def clone_cfg(tmp_path: Path, recording: Path, *extra: str):
    return compose_config("clone", [
        "voice_name=ava", f"inputs=[{recording}]", f"work_dir={tmp_path / 'ava'}", "clone/asr=pocketsphinx",
        f"paths.output_dir={tmp_path}", *extra,
    ])


@pytest.mark.slow  # over ~20 s on 2 cores
def test_slice_transcribe_reference_then_resume(tmp_path: Path, raw_recording) -> None:
    pytest.importorskip("pocketsphinx")
    recording, texts = raw_recording
    cfg = clone_cfg(tmp_path, recording, f"skip=[{','.join(LATER)}]", "clone/denoise=spectral_gate")
    summary = CloneWorkflow(cfg).run()

    data = summary["data"]
    assert summary["steps"]["slice"] == "ran" and summary["steps"]["train_gpt"] == "skipped"
    # Every demo clip is 2.5-5 s and pauses are >= 1 s, so each becomes one segment.
    assert data["kept_segments"] == len(texts)
    assert 0.3 < data["kept_minutes"] < data["input_minutes"]
    entries = read_list(tmp_path / "ava" / "transcripts.list")
    assert len(entries) == summary["transcribed_segments"] >= len(texts) - 1
    assert all(e.speaker == "ava" and e.language == "en" and Path(e.path).is_file() for e in entries)
    # Pocketsphinx gets a fair share of the espeak words right.
    truth = {w.strip(".,").lower() for t in texts for w in t.split()}
    heard = {w for e in entries for w in e.text.split()}
    assert len(truth & heard) >= 10
    ref = summary["reference"]
    assert 3.0 <= ref["stats"]["duration"] <= 10.0 and ref["text"]
    ranking = json.loads((tmp_path / "ava" / "reference_ranking.json").read_text())
    assert ranking[0]["key"] == Path(ref["audio"]).stem

    # A user edits a transcript; restarting from "reference" reuses the slices and transcripts.
    again = CloneWorkflow(clone_cfg(tmp_path, recording, f"skip=[{','.join(LATER)}]", "restart_from=reference")).run()
    assert again["steps"]["slice"] == "resumed" and again["steps"]["transcribe"] == "resumed"
    assert again["steps"]["reference"] == "ran"


def test_missing_inputs_is_a_clear_error(tmp_path: Path) -> None:
    cfg = compose_config("clone", ["voice_name=x", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="inputs="):
        CloneWorkflow(cfg)


@pytest.mark.slow  # over ~20 s on 2 cores
def test_gst_clone_cli_runs_the_front_half(tmp_path: Path, raw_recording) -> None:
    pytest.importorskip("pocketsphinx")
    import os
    import subprocess
    import sys

    recording, _ = raw_recording
    work = tmp_path / "cli_voice"
    command = [
        sys.executable, "-m", "gpt_sovits_train.cli.clone", "voice_name=cli", f"inputs=[{recording}]",
        f"work_dir={work}", "clone/asr=pocketsphinx", f"hydra.run.dir={tmp_path / 'run'}",
        "skip=[prepare,train_sovits,train_gpt,bundle,sample]",
    ]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reference:" in proc.stdout and "steps: slice=ran" in proc.stdout
    summary = json.loads((work / "summary.json").read_text())
    assert summary["data"]["kept_segments"] >= 1 and (work / "transcripts.list").is_file()

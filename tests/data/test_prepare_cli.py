"""The ``gst-prepare`` Hydra app: composes conf/prepare.yaml and turns known failures into one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # 57 s on 2 loaded cores (CLI subprocess or training run)
def test_cli_reports_an_unusable_corpus_without_a_traceback(tmp_path, random_models):
    sf.write(tmp_path / "silent.wav", np.zeros(32000, dtype=np.float32), 32000)
    corpus = tmp_path / "c.list"
    corpus.write_text("silent.wav|x|en|Hello there.\nmissing.wav|x|en|Hello.\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "gpt_sovits_train.cli.prepare", f"input.path={corpus}", f"output_dir={tmp_path / 'out'}",
        "prepare/features@features=random_init", f"random_models={random_models}", "features.ssl.device=cpu",
        "features.bert.device=cpu", "features.speaker.device=cpu", "progress=false", f"hydra.run.dir={tmp_path / 'h'}",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    for expected in ("no usable utterance", "silent: 1", "missing_audio: 1"):
        assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # 43 s on 2 loaded cores (CLI subprocess or training run)
def test_user_mistakes_get_one_line_and_exit_2_before_any_model_is_built(tmp_path):
    corpus = tmp_path / "c.list"
    corpus.write_text("missing.wav|x|en|Hello.\n", encoding="utf-8")
    (tmp_path / "a_file").write_text("not a folder")
    # random_models points nowhere: reaching the extractors would fail differently
    base = [sys.executable, "-m", "gpt_sovits_train.cli.prepare", "prepare/features@features=random_init",
            f"random_models={tmp_path / 'no_models'}", f"hydra.run.dir={tmp_path / 'h'}"]
    cases = {  # more cases, in-process: tests/data/test_prepare_safety.py
        "input.path is not set": [f"output_dir={tmp_path / 'out'}"],
        "is a file, not a folder": [f"input.path={corpus}", f"output_dir={tmp_path / 'a_file' / 'shards'}"],
    }
    for expected, overrides in cases.items():
        result = subprocess.run([*base, *overrides], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, (expected, result.stderr[-2000:])
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()

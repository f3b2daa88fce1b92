"""The ``gst-prepare`` Hydra app: composes conf/prepare.yaml and turns known failures into one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[2]


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

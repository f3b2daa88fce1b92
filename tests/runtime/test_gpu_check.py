"""``scripts/gpu_check.py --dry-run`` runs every section on CPU (tiny sizes, gloo) and writes its JSON, so the
one-shot GPU check cannot rot between the days a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


@pytest.mark.slow
def test_dry_run_measures_every_section(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert report["dry_run"] is True
    assert set(results) == {"gpt_train", "sovits_train", "gpt_decode_b1", "e2e_rtf", "data_loader", "ddp"}
    assert all("error" not in section for section in results.values())
    assert results["gpt_train"]["semantic_tokens_per_s"] > 0 and results["gpt_train"]["mfu"] is None  # no GPU peak
    assert results["sovits_train"]["bf16"]["steps_per_s"] > 0 and results["sovits_train"]["fp16"]["steps_per_s"] > 0
    assert results["gpt_decode_b1"]["eager_tokens_per_s"] > 0 and "compiled_tokens_per_s" in results["gpt_decode_b1"]
    assert results["e2e_rtf"]["rtf"] > 0
    assert 0 <= results["data_loader"]["loader_wait_share"] < 1 and results["data_loader"]["steps"] > 1
    assert results["ddp"] == results["ddp"] | {"backend": "gloo", "world_size": 1, "all_reduce_ok": True}


def test_without_a_gpu_it_says_to_use_dry_run() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full check would run")
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--dry-run" in proc.stderr and "Traceback" not in proc.stderr

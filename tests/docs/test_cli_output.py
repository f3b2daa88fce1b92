"""What every CLI run prints: no third-party deprecation noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # 35 s on 2 loaded cores (CLI subprocess or training run)
def test_no_jieba_pkg_resources_warning() -> None:
    """jieba's `import pkg_resources` warned on every run that touched Chinese text."""
    code = "from gpt_sovits_train.text.frontend import phonemize; phonemize('你好。', 'zh')"
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pkg_resources" not in proc.stderr, proc.stderr[-2000:]

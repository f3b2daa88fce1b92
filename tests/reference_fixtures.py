"""Where the GPT-SoVITS v2 reference fixtures live, and the sizes tests read from them (never from test code).

The vendored set is ``tests/fixtures/reference/`` (its README says how it was made), so a plain clone runs every
parity test with nothing beside it; ``GST_REFERENCE_DIR`` points the same tests at another set in the same format,
e.g. one made by ``scripts/make_reference_fixtures.py`` with other sizes and seeds.
"""

from __future__ import annotations

import os
from pathlib import Path

VENDORED_REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reference"


def reference_dir() -> Path:
    """The fixture folder: ``GST_REFERENCE_DIR`` when set, else the vendored one."""
    return Path(os.environ.get("GST_REFERENCE_DIR") or VENDORED_REFERENCE).resolve()


def early_stop_num(t2s_meta: dict) -> int:
    """The ``early_stop_num`` the fixture's greedy decodes ran with (they generate that many tokens plus one)."""
    call = t2s_meta["calls"]["greedy_decode"]
    return int(call.split("early_stop_num=")[1].split(",")[0])


def segment_frames(sovits_meta: dict) -> int:
    """The SoVITS training segment in spectrogram frames (v2: ``train.segment_size // data.hop_length``)."""
    config = sovits_meta["config"]
    return config["train"]["segment_size"] // config["data"]["hop_length"]

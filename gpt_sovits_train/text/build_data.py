"""Regenerate the JSON tables shipped in ``gpt_sovits_train/text/data`` from the shared v2 reference facts.

The package must never read the shared reference folder at run time (it is not installed with the wheel), so the
facts the frontend needs are frozen into package data once.  Run ``python -m gpt_sovits_train.text.build_data
<reference_dir>`` only when the reference changes; the output is committed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def build(reference_dir: Path) -> None:
    """Write ``v2_symbols.json`` and ``zh_lexicon.json`` from ``v2_symbols.json`` / ``v2_text_frontend.json``."""
    symbols = json.loads((reference_dir / "v2_symbols.json").read_text(encoding="utf-8"))["v2"]
    frontend = json.loads((reference_dir / "v2_text_frontend.json").read_text(encoding="utf-8"))
    if symbols["symbols"] != frontend["symbols_v2"]["list"]:
        raise ValueError("v2_symbols.json and v2_text_frontend.json disagree on the symbol list; fix the reference")
    DATA_DIR.mkdir(exist_ok=True)
    (DATA_DIR / "v2_symbols.json").write_text(
        json.dumps({"pad": symbols["pad"], "symbols": symbols["symbols"]}, ensure_ascii=False, indent=0) + "\n",
        encoding="utf-8",
    )
    zh = frontend["chinese"]
    lexicon = {
        "pinyin_to_phones": zh["pinyin_to_symbol"]["table"],
        "must_neutral_tone_words": zh["must_neural_tone_words"],
        "must_not_neutral_tone_words": zh["must_not_neural_tone_words"],
        "must_erhua": zh["erhua"]["must_erhua"],
        "not_erhua": zh["erhua"]["not_erhua"],
    }
    text = json.dumps(lexicon, ensure_ascii=False, indent=0) + "\n"
    (DATA_DIR / "zh_lexicon.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m gpt_sovits_train.text.build_data <reference_dir holding v2_symbols.json>")
    build(Path(sys.argv[1]))

"""Hand-written sentence tables (``cases_*.jsonl``): exact phones for the hand-checked rows, invariants for all.

Rows with a ``phones`` field were checked by hand (readings, tone sandhi, stress, accent marks); the rest are
checked for the properties every frontend output must have.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpt_sovits_train.text.frontend import phonemize

CASES_DIR = Path(__file__).resolve().parent


def _rows(language: str) -> list[dict]:
    with (CASES_DIR / f"cases_{language}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.mark.parametrize("language", ["zh", "en", "ja"])
def test_table_has_at_least_100_sentences(language: str) -> None:
    assert len(_rows(language)) >= 100


@pytest.mark.parametrize("language", ["zh", "en", "ja", "mixed"])
def test_every_sentence_is_well_formed_and_deterministic(language: str, well_formed) -> None:
    for row in _rows(language):
        result = phonemize(row["text"], row["language"])
        assert result.phones, row["text"]
        # Japanese accent-phrase boundaries are UNK by v2 design; nowhere else may UNK appear.
        well_formed(result, allow_unk=language in {"ja", "mixed"})
        assert phonemize(row["text"], row["language"]) == result


@pytest.mark.parametrize(("language", "minimum"), [("zh", 10), ("en", 10), ("ja", 10), ("mixed", 8)])
def test_hand_checked_rows(language: str, minimum: int) -> None:
    checked = [row for row in _rows(language) if "phones" in row]
    assert len(checked) >= minimum
    for row in checked:
        result = phonemize(row["text"], row["language"])
        assert " ".join(result.phones) == row["phones"], row["text"]
        if "norm_text" in row:
            assert result.norm_text == row["norm_text"], row["text"]
        if "languages" in row:
            assert [run.language for run in result.runs] == row["languages"], row["text"]

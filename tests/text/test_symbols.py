"""The shipped v2 symbol table is the reference table, and id <-> symbol conversion is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpt_sovits_train.text.symbols import (
    PAD,
    PAD_ID,
    SYMBOLS_V2,
    UNK_ID,
    ids_to_symbols,
    symbol_to_id,
    symbols_to_ids,
)


def test_table_equals_reference(ref_dir: Path) -> None:
    reference = json.loads((ref_dir / "v2_symbols.json").read_text(encoding="utf-8"))["v2"]
    assert reference["symbols"] == SYMBOLS_V2
    assert (PAD, PAD_ID) == (reference["pad"], reference["pad_id"]) == ("_", 95)
    assert len(SYMBOLS_V2) == 732


def test_ids_of_note(ref_dir: Path) -> None:
    notes = json.loads((ref_dir / "v2_text_frontend.json").read_text(encoding="utf-8"))["symbols_v2"]["ids_of_note"]
    for symbol, index in notes.items():
        assert symbol_to_id(symbol) == index
    assert UNK_ID == 86


def test_round_trip_every_id() -> None:
    ids = list(range(len(SYMBOLS_V2)))
    assert symbols_to_ids(ids_to_symbols(ids)) == ids
    assert ids_to_symbols(symbols_to_ids(SYMBOLS_V2)) == SYMBOLS_V2


def test_unknown_symbol_and_out_of_range_id_raise() -> None:
    with pytest.raises(KeyError, match="not a GPT-SoVITS v2 phone symbol"):
        symbol_to_id("#")
    with pytest.raises(IndexError, match="outside the v2 table"):
        ids_to_symbols([732])
    with pytest.raises(IndexError):
        ids_to_symbols([-1])

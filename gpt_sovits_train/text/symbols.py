"""The GPT-SoVITS v2 phoneme symbol table (732 symbols, id order) and id <-> symbol conversion.

Checkpoints embed phones by position in this exact list, so the list is frozen package data
(``data/v2_symbols.json``) rather than rebuilt from phone inventories: any reordering would silently
scramble every pretrained embedding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

_DATA_FILE = Path(__file__).resolve().parent / "data" / "v2_symbols.json"


@cache
def _load() -> tuple[list[str], str]:
    payload = json.loads(_DATA_FILE.read_text(encoding="utf-8"))
    return list(payload["symbols"]), str(payload["pad"])


SYMBOLS_V2: list[str] = _load()[0]
PAD: str = _load()[1]
_SYMBOL_TO_ID: dict[str, int] = {symbol: index for index, symbol in enumerate(SYMBOLS_V2)}
PAD_ID: int = _SYMBOL_TO_ID[PAD]

#: The phone v2 emits for anything it cannot pronounce (also every Japanese accent-phrase boundary in v2 data).
UNK: str = "UNK"
UNK_ID: int = _SYMBOL_TO_ID[UNK]

#: The six punctuation phones every v2 language frontend may emit.
PUNCTUATION: tuple[str, ...] = ("!", "?", "…", ",", ".", "-")

if len(SYMBOLS_V2) != 732 or len(_SYMBOL_TO_ID) != len(SYMBOLS_V2):
    raise RuntimeError(f"{_DATA_FILE} is corrupt: expected 732 unique symbols, got {len(SYMBOLS_V2)}")


def is_symbol(symbol: str) -> bool:
    """True when ``symbol`` is in the v2 table."""
    return symbol in _SYMBOL_TO_ID


def symbol_to_id(symbol: str) -> int:
    """Id of one v2 symbol; unknown symbols raise so that no wrong id is ever produced silently."""
    try:
        return _SYMBOL_TO_ID[symbol]
    except KeyError:
        raise KeyError(
            f"{symbol!r} is not a GPT-SoVITS v2 phone symbol; map it to {UNK!r} (id {UNK_ID}) or fix the G2P"
        ) from None


def symbols_to_ids(symbols: Iterable[str]) -> list[int]:
    """Ids of a phone sequence (the v2 ``cleaned_text_to_sequence``)."""
    return [symbol_to_id(symbol) for symbol in symbols]


def ids_to_symbols(ids: Iterable[int]) -> list[str]:
    """Symbols of an id sequence; out-of-range ids raise instead of wrapping around."""
    symbols = []
    for index in ids:
        index = int(index)
        if not 0 <= index < len(SYMBOLS_V2):
            raise IndexError(f"phone id {index} is outside the v2 table (0..{len(SYMBOLS_V2) - 1})")
        symbols.append(SYMBOLS_V2[index])
    return symbols

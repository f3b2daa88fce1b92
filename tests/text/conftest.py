"""Shared checks for the text frontend tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpt_sovits_train.text.frontend import Phonemized
from gpt_sovits_train.text.symbols import SYMBOLS_V2, UNK, ids_to_symbols


def assert_well_formed(result: Phonemized, allow_unk: bool) -> None:
    """Properties every output has: valid ids, ids match phones, word2ph sums, no stray UNK."""
    assert len(result.phones) == len(result.ids)
    assert all(0 <= index < len(SYMBOLS_V2) for index in result.ids)
    assert ids_to_symbols(result.ids) == result.phones
    for run in result.runs:
        if run.language == "zh":
            assert run.word2ph is not None
            assert sum(run.word2ph) == len(run.phones)
            assert len(run.word2ph) == len(run.norm_text)
        else:
            assert run.word2ph is None
    if result.segments:
        assert [p for run in result.segments for p in run.phones] == result.phones
    if not allow_unk:
        assert UNK not in result.phones
        assert "停" not in result.phones  # the Korean "unknown character" symbol


@pytest.fixture
def well_formed() -> Callable[[Phonemized, bool], None]:
    """The output invariants as a fixture, so every test module checks the same properties."""
    return assert_well_formed

"""Split long inference text into sentence-sized pieces.

The GPT stage degrades on very long phone sequences, so synthesis works piece by piece: first at sentence ends,
then (for pieces still longer than ``max_chars``) at clause marks, and only as a last resort at a hard length.
A full stop after a title or an initial (``Dr.``, ``U.S.``, ``J.``) is not a sentence end.
"""

from __future__ import annotations

import re

DEFAULT_MAX_CHARS = 100
# Where a sentence may end: after CJK/ASCII terminal marks, '.' only when followed by whitespace or the end.
_SENTENCE_END = re.compile(r"[。！？!?…\n]+[”’」』\"')）]*|[.;；]+[”’\"')]*(?=\s|$)")
_CLAUSE_END = re.compile(r"(?<=[，,、；;：:—])")
_NOT_A_SENTENCE_END = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|vs|etc|No|Inc|Ltd|Co|approx|e\.g|i\.e)|\b[A-Za-z]|(?:[A-Za-z]\.)+[A-Za-z])\.$"
)


def _sentences(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start:match.end()]
        if match.group(0).startswith(".") and _NOT_A_SENTENCE_END.search(text[:match.start() + 1]):
            continue  # "Dr." / "U.S." inside a sentence
        pieces.append(candidate)
        start = match.end()
    pieces.append(text[start:])
    return pieces


def _hard_split(piece: str, max_chars: int) -> list[str]:
    """Cut at the last space before the limit when there is one (English), else exactly at the limit (CJK)."""
    pieces = []
    while len(piece) > max_chars:
        cut = piece.rfind(" ", 0, max_chars + 1)
        cut = cut if cut > max_chars // 2 else max_chars
        pieces.append(piece[:cut])
        piece = piece[cut:]
    pieces.append(piece)
    return pieces


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive short parts so that pieces are as long as allowed (fewer, more natural chunks)."""
    packed: list[str] = []
    for part in parts:
        if packed and len(packed[-1]) + len(part) <= max_chars:
            packed[-1] += part
        else:
            packed.append(part)
    return packed


def split_sentences(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Pieces of ``text`` of at most ``max_chars`` characters each (stripped, none empty).

    Splits by sentence punctuation first, then clause punctuation, then length; sentences are never merged, so
    each piece ends where the text had a full stop or a forced cut.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    pieces: list[str] = []
    for sentence in _sentences(text):
        if not sentence.strip():
            continue
        if len(sentence.strip()) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in _pack(_CLAUSE_END.split(sentence), max_chars):
            pieces.extend(_hard_split(clause, max_chars))
    return [piece.strip() for piece in pieces if piece.strip()]

"""Split mixed-script text into language runs (zh / ja / en) before normalization.

Scripts decide most of it: Latin letters are English, kana are Japanese, Hangul is Korean, other alphabets are
unsupported.  Han characters are Japanese when their sentence contains kana (or the caller says ``ja``), else
Chinese.  Digits, symbols and punctuation have no language of their own: they join the run before them, except a
number written directly before a Han/kana character (``3个``, ``3時``), which is read in that language.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from gpt_sovits_train.text.en_normalize import UNITS_EN
from gpt_sovits_train.text.errors import UnsupportedTextError
from gpt_sovits_train.text.zh_normalize import UNITS_ZH

SUPPORTED_LANGUAGES = ("zh", "en", "ja", "ko", "auto")

# Unit abbreviations that stay with the number before them (80kg is one Chinese or English token).
_UNITS = sorted({*UNITS_ZH, *UNITS_EN}, key=len, reverse=True)
_NUMBER_WITH_UNIT = re.compile(r"\d[\d.,]*\s?(?:" + "|".join(re.escape(unit) for unit in _UNITS) + r")(?![A-Za-z])")
_SENTENCE_END = set("。！？!?.\n")


@dataclass
class Run:
    """A stretch of text in one language; ``start``/``end`` index the caller's string."""

    language: str
    text: str
    start: int
    end: int


def script_of(char: str) -> str:
    """'han', 'kana', 'latin', 'hangul', 'other_letter' (unsupported alphabets) or 'neutral' (digits, marks, emoji)."""
    code = ord(char)
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or char in "々〇":
        return "han"
    if (0x3040 <= code <= 0x30FF and char not in "・ー") or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9D:
        return "kana"
    if char == "ー":
        return "kana"
    if ("a" <= char.lower() <= "z") or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A:
        return "latin"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if unicodedata.category(char).startswith("L"):
        first_word = unicodedata.name(char, "").split(" ")[0]
        if first_word == "LATIN":
            return "latin"  # accented Latin letters (café, naïve)
        if first_word == "GREEK":
            return "neutral"  # maths symbols (π, α): each normalizer reads them in its own language
        return "other_letter"
    return "neutral"


def _unsupported(text: str, start: int, script: str) -> UnsupportedTextError:
    end = start
    while end < len(text) and (script_of(text[end]) == script or text[end] == " "):
        end += 1
    span = text[start:end].strip()
    return UnsupportedTextError(
        f"this script is not supported by the v2 text frontend: {span!r} at characters {start}..{end}; "
        "transliterate or remove it, or write it in Chinese, Japanese, Korean or English"
    )


def _kana_sentences(text: str) -> list[bool]:
    """Per character: does its sentence contain kana?  (One pass, so long texts stay linear.)"""
    flags: list[bool] = []
    sentence_start = 0
    for index, char in enumerate([*text, "\n"]):
        if char in _SENTENCE_END or index == len(text):
            has_kana = any(script_of(c) == "kana" for c in text[sentence_start:index + 1])
            flags.extend([has_kana] * (min(index + 1, len(text)) - sentence_start))
            sentence_start = index + 1
    return flags


def segment(text: str, language: str = "auto") -> list[Run]:
    """Language runs covering ``text`` (concatenating their texts gives ``text`` back).

    ``language`` is the caller's hint: ``zh`` / ``ja`` decide how Han characters and language-less text (digits,
    punctuation) are read; ``en`` reads language-less text as English.  Latin letters are always English and
    kana always Japanese, whatever the hint, because no other frontend can pronounce them.
    """
    if language not in SUPPORTED_LANGUAGES:
        raise UnsupportedTextError(
            f"language {language!r} is not supported; use one of {', '.join(SUPPORTED_LANGUAGES)} "
            "(Cantonese needs its own G2P, which this frontend does not ship)"
        )
    protected = [False] * len(text)  # characters inside "80kg": the unit letters belong to the number
    for match in _NUMBER_WITH_UNIT.finditer(text):
        for index in range(match.start(), match.end()):
            protected[index] = True

    kana_sentence = _kana_sentences(text) if language not in {"zh", "ja"} else []
    labels: list[str | None] = []
    for index, char in enumerate(text):
        script = "neutral" if protected[index] else script_of(char)
        if script == "other_letter":
            raise _unsupported(text, index, script)
        if script == "latin":
            labels.append("en")
        elif script == "kana":
            labels.append("ja")
        elif script == "hangul":
            labels.append("ko")
        elif script == "han":
            labels.append("ja" if language == "ja" or (language != "zh" and kana_sentence[index]) else "zh")
        else:
            labels.append(None)
    _assign_neutral(text, labels, default="zh" if language == "auto" else language)

    runs: list[Run] = []
    for index, label in enumerate(labels):
        if runs and runs[-1].language == label:
            runs[-1].text += text[index]
            runs[-1].end = index + 1
        else:
            runs.append(Run(str(label), text[index], index, index + 1))
    return runs


def _assign_neutral(text: str, labels: list[str | None], default: str) -> None:
    """Give digits / marks / spaces the language of a neighbouring run (in place).

    A neutral chunk joins the run before it.  Between English and a CJK run, English keeps the ASCII marks and
    spaces right after its word, and the chunk's first digit or CJK mark starts the CJK run (``iPhone 3年``,
    ``MacBook，用``), so numbers are read in the language of the measure word after them.
    """
    index = 0
    while index < len(labels):
        if labels[index] is not None:
            index += 1
            continue
        end = index
        while end < len(labels) and labels[end] is None:
            end += 1
        before = labels[index - 1] if index > 0 else None
        after = labels[end] if end < len(labels) else None
        choice = before or after or default
        for position in range(index, end):
            char = text[position]
            if before == "en" and after in {"zh", "ja", "ko"} and (char.isdigit() or ord(char) > 0x2FFF):
                choice = after
            labels[position] = choice
        index = end

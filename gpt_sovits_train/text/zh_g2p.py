"""Chinese G2P: normalized text -> v2 phones (initial + toned final per syllable) and word2ph.

Pinyin comes from pypinyin on jieba words (the path the v2 reference data was made with), then the v2 tone
sandhi / erhua rules, then the opencpop-strict pinyin -> [initial, final] table shipped in ``data/zh_lexicon.json``.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from functools import cache
from pathlib import Path

import jieba
import jieba.posseg
from pypinyin import Style, lazy_pinyin

from gpt_sovits_train.text.symbols import PUNCTUATION, UNK
from gpt_sovits_train.text.zh_tone_sandhi import apply_erhua, apply_tone_sandhi, finals_of, merge_words

jieba.setLogLevel(logging.WARNING)

_LEXICON_FILE = Path(__file__).resolve().parent / "data" / "zh_lexicon.json"
_ZERO_INITIAL_WHOLE = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
_ZERO_INITIAL_FIRST_LETTER = {"v": "yu", "e": "e", "i": "y", "u": "w"}
_NUMERALS = set("零幺一二三四五六七八九十")
_FINAL_RENAMES = {"uei": "ui", "iou": "iu", "uen": "un"}


class UnknownPinyinWarning(UserWarning):
    """A syllable pypinyin produced is not in the v2 pinyin table; it is emitted as UNK."""


@cache
def _pinyin_table() -> dict[str, tuple[str, str]]:
    raw = json.loads(_LEXICON_FILE.read_text(encoding="utf-8"))["pinyin_to_phones"]
    return {pinyin: (pair[0], pair[1]) for pinyin, pair in raw.items()}


def syllable_to_phones(initial: str, toned_final: str) -> list[str]:
    """(``"zh"``, ``"ang1"``) -> ``["zh", "ang1"]``; zero-initial syllables get v2's y/w/AA/EE/OO pseudo-initials."""
    tone, final = toned_final[-1], toned_final[:-1]
    if initial:
        pinyin = initial + _FINAL_RENAMES.get(final, final)
    elif final in _ZERO_INITIAL_WHOLE:
        pinyin = _ZERO_INITIAL_WHOLE[final]
    else:
        first = final[:1]
        pinyin = _ZERO_INITIAL_FIRST_LETTER.get(first, first) + final[1:]
    pair = _pinyin_table().get(pinyin)
    if pair is None or tone not in "12345":
        warnings.warn(f"pinyin {initial}{toned_final!r} is not in the v2 table; emitting {UNK}", UnknownPinyinWarning,
                      stacklevel=3)
        return [UNK, UNK]
    return [pair[0], pair[1] + tone]


def _word_syllables(word: str, pos: str) -> tuple[list[str], list[str]]:
    initials = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS)
    finals = finals_of(word)
    if len(finals) != len(word):  # pypinyin joins runs of non-Chinese characters; keep them one per char
        return list(word), list(word)
    finals = apply_tone_sandhi(word, pos, finals)
    finals = apply_erhua(word, pos, finals)
    return initials, finals


def g2p_zh(norm_text: str) -> tuple[list[str], list[int]]:
    """Phones and word2ph (phones per character of ``norm_text``) for normalized Chinese text."""
    phones: list[str] = []
    word2ph: list[int] = []
    # Sentences are cut after each punctuation mark so that jieba never merges across a pause.
    for sentence in re.split(r"(?<=[!?…,.\-])", norm_text):
        if not sentence:
            continue
        words = merge_words(list(jieba.posseg.lcut(sentence)))
        previous_char = ""
        for word, pos in words:
            initials, finals = _word_syllables(word, pos)
            if word.startswith("一") and previous_char in _NUMERALS and finals and finals[0].startswith("i"):
                finals[0] = "i1"  # 十一点: jieba cut 十|一点, but this 一 is part of the number
            previous_char = word[-1]
            for char, initial, final in zip(word, initials, finals):
                if char in PUNCTUATION:
                    phones.append(char)
                    word2ph.append(1)
                else:
                    phones.extend(syllable_to_phones(initial, final))
                    word2ph.append(2)
    return phones, word2ph

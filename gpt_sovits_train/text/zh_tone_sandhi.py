"""Mandarin tone sandhi on jieba words (一/不 changes, neutral tones, third-tone sandhi, erhua) as v2 applies it.

pypinyin returns dictionary (citation) tones; spoken Mandarin changes them in context.  The v2 models were trained
on phones with these changes applied, so the rules (word lists from the v2 reference) are reproduced here.
Finals are strings such as ``"ao3"``: the last character is the tone digit, 5 meaning neutral.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jieba
from pypinyin import Style, lazy_pinyin

_LEXICON_FILE = Path(__file__).resolve().parent / "data" / "zh_lexicon.json"
_NEUTRAL_PARTICLES = set("吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶")
_PUNCTUATION = set("!?…,.-")
_DIGIT_NUMERALS = set("零幺一二三四五六七八九")


@cache
def lexicon() -> dict[str, set[str]]:
    """Word lists that decide neutral tones and erhua (frozen from the v2 reference)."""
    raw = json.loads(_LEXICON_FILE.read_text(encoding="utf-8"))
    return {key: set(value) for key, value in raw.items() if isinstance(value, list)}


def finals_of(word: str) -> list[str]:
    """Toned finals of a word with the neutral tone written 5 (pypinyin, strict initials)."""
    return lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)


def _with_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third_tone(finals: list[str]) -> bool:
    return all(final[-1] == "3" for final in finals)


def _split_in_two(word: str) -> list[str]:
    """Split a word at its shortest search-mode sub-word, e.g. 纸老虎 -> [纸, 老虎]; used by 3-char rules."""
    pieces = sorted(jieba.cut_for_search(word), key=len)
    first = pieces[0]
    if word.find(first) == 0:
        return [first, word[len(first):]]
    return [word[: -len(first)], first]


# --- merging jieba words so that the per-word rules see the right units -----------------------------------------

def _merge_bu(words: list[list[str]]) -> list[list[str]]:
    """A lone 不 belongs to the following word (不 + 去 -> 不去) so the bu rule can see the next tone."""
    merged: list[list[str]] = []
    pending_bu = False
    for word, pos in words:
        if pending_bu:
            word = "不" + word
            pending_bu = False
        if word == "不":
            pending_bu = True
            continue
        merged.append([word, pos])
    if pending_bu:
        merged.append(["不", "d"])
    return merged


def _merge_yi(words: list[list[str]]) -> list[list[str]]:
    """V 一 V (看一看) becomes one word; a lone 一 joins the following word."""
    merged: list[list[str]] = []
    index = 0
    while index < len(words):
        word, pos = words[index]
        is_reduplicated_verb = (
            merged and word == "一" and index + 1 < len(words)
            and merged[-1][0] == words[index + 1][0] and merged[-1][1] == "v"
        )
        if is_reduplicated_verb:
            merged[-1][0] = merged[-1][0] + "一" + merged[-1][0]
            index += 2
            continue
        merged.append([word, pos])
        index += 1
    joined: list[list[str]] = []
    for word, pos in merged:
        if joined and joined[-1][0] == "一":
            joined[-1][0] += word
        else:
            joined.append([word, pos])
    return joined


def _merge_reduplication(words: list[list[str]]) -> list[list[str]]:
    merged: list[list[str]] = []
    for word, pos in words:
        if merged and merged[-1][0] == word:
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _merge_third_tones(words: list[list[str]], whole_words: bool) -> list[list[str]]:
    """Join neighbours that form one third-tone sandhi domain (whole words all tone 3, or 3|3 at the seam)."""
    finals = [finals_of(word) for word, _ in words]
    merged: list[list[str]] = []
    merged_into_previous = [False] * len(words)
    for index, (word, pos) in enumerate(words):
        if index > 0 and not merged_into_previous[index - 1] and finals[index - 1] and finals[index]:
            previous = words[index - 1][0]
            if whole_words:
                joins = _all_third_tone(finals[index - 1]) and _all_third_tone(finals[index])
            else:
                joins = finals[index - 1][-1][-1] == "3" and finals[index][0][-1] == "3"
            is_reduplication = len(previous) == 2 and previous[0] == previous[1]
            if joins and not is_reduplication and len(previous) + len(word) <= 3:
                merged[-1][0] += word
                merged_into_previous[index] = True
                continue
        merged.append([word, pos])
    return merged


def _merge_er(words: list[list[str]]) -> list[list[str]]:
    merged: list[list[str]] = []
    for word, pos in words:
        if merged and word == "儿":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def merge_words(words: list[tuple[str, str]]) -> list[list[str]]:
    """Re-group jieba (word, pos) pairs into sandhi domains, in the v2 order of steps."""
    grouped = [[word, pos] for word, pos in words]
    grouped = _merge_bu(grouped)
    grouped = _merge_yi(grouped)
    grouped = _merge_reduplication(grouped)
    grouped = _merge_third_tones(grouped, whole_words=True)
    grouped = _merge_third_tones(grouped, whole_words=False)
    return _merge_er(grouped)


# --- per-word tone changes -----------------------------------------------------------------------------------------

def _bu_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":  # 看不懂: 不 is neutral
        finals[1] = _with_tone(finals[1], "5")
        return finals
    for index, char in enumerate(word[:-1]):
        if char == "不" and finals[index + 1][-1] == "4":  # 不去 -> bu2
            finals[index] = _with_tone(finals[index], "2")
    return finals


def _yi_sandhi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(char.isnumeric() for char in word if char != "一"):
        return finals  # a number: 一 keeps tone 1 (一零一)
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:  # 看一看
        finals[1] = _with_tone(finals[1], "5")
    elif word.startswith("第一"):
        finals[1] = _with_tone(finals[1], "1")
    else:
        for index, char in enumerate(word[:-1]):
            if char != "一":
                continue
            if word[index + 1] in _DIGIT_NUMERALS or (index > 0 and word[index - 1] in _DIGIT_NUMERALS | {"十"}):
                finals[index] = _with_tone(finals[index], "1")  # part of a number: 一九九八, 十一点
                continue
            if finals[index + 1][-1] == "4":
                finals[index] = _with_tone(finals[index], "2")
            elif word[index + 1] not in _PUNCTUATION:
                finals[index] = _with_tone(finals[index], "4")
    return finals


def _neutral_index(word: str, pos: str, must_neutral: set[str], must_not_neutral: set[str]) -> int | None:
    """Index of the syllable a particle / suffix / lexical rule makes neutral (first matching rule wins)."""
    last = word[-1:]
    ge_index = word.find("个")
    if last in _NEUTRAL_PARTICLES or last in {"的", "地", "得"}:
        return len(word) - 1
    if len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
        return 0
    if len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in must_not_neutral:
        return len(word) - 1
    if len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:
        return len(word) - 1
    if len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
        return len(word) - 1
    counted = ge_index >= 1 and (word[ge_index - 1].isnumeric() or word[ge_index - 1] in "几有两半多各整每做是")
    if counted or word == "个":
        return ge_index
    if word in must_neutral or word[-2:] in must_neutral:
        return len(word) - 1
    return None


def _neutral_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    words = lexicon()
    must_neutral, must_not_neutral = words["must_neutral_tone_words"], words["must_not_neutral_tone_words"]
    for index in range(1, len(word)):
        if word[index] == word[index - 1] and pos[:1] in {"n", "v", "a"} and word not in must_not_neutral:
            finals[index] = _with_tone(finals[index], "5")  # 奶奶, 看看
    index = _neutral_index(word, pos, must_neutral, must_not_neutral)
    if index is not None:
        finals[index] = _with_tone(finals[index], "5")
    parts = _split_in_two(word)
    split_at = len(parts[0])
    for start, part in ((0, parts[0]), (split_at, parts[1])):
        if part and (part in must_neutral or part[-2:] in must_neutral):
            end = start + len(part) - 1
            finals[end] = _with_tone(finals[end], "5")
    return finals


def _third_tone_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_third_tone(finals):
        finals[0] = _with_tone(finals[0], "2")
    elif len(word) == 3:
        parts = _split_in_two(word)
        split_at = len(parts[0])
        if _all_third_tone(finals):
            if split_at == 2:  # 展览馆: (展览)馆 -> 2 2 3
                finals[0] = _with_tone(finals[0], "2")
                finals[1] = _with_tone(finals[1], "2")
            elif split_at == 1:  # 纸老虎: 纸(老虎) -> 3 2 3
                finals[1] = _with_tone(finals[1], "2")
        else:
            head, tail = finals[:split_at], finals[split_at:]
            for index, part in enumerate((head, tail)):
                if len(part) == 2 and _all_third_tone(part):
                    part[0] = _with_tone(part[0], "2")
                elif index == 1 and part and head and not _all_third_tone(part) and part[0][-1] == "3" \
                        and head[-1][-1] == "3":
                    head[-1] = _with_tone(head[-1], "2")
            finals = head + tail
    elif len(word) == 4:
        halves = [finals[:2], finals[2:]]
        for half in halves:
            if _all_third_tone(half):
                half[0] = _with_tone(half[0], "2")
        finals = halves[0] + halves[1]
    return finals


def apply_tone_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    """Spoken tones of one (merged) word: bu, yi, neutral, then third-tone rules, in the v2 order."""
    finals = list(finals)
    finals = _bu_sandhi(word, finals)
    finals = _yi_sandhi(word, finals)
    finals = _neutral_sandhi(word, pos, finals)
    return _third_tone_sandhi(word, finals)


def apply_erhua(word: str, pos: str, finals: list[str]) -> list[str]:
    """v2 erhua: 儿 stays its own syllable; a word-final 儿 copies the previous tone unless it is a real 儿 word."""
    words = lexicon()
    finals = list(finals)
    if finals and word.endswith("儿") and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in words["must_erhua"] and (word in words["not_erhua"] or pos in {"a", "j", "nr"}):
        return finals
    if len(finals) != len(word) or len(word) < 2:
        return finals
    if word[-1] == "儿" and finals[-1] in {"er2", "er5"} and word[-2:] not in words["not_erhua"]:
        finals[-1] = "er" + finals[-2][-1]
    return finals

"""Korean G2P: Hangul -> pronounced jamo, one v2 symbol per jamo (v2 spells Korean as compatibility jamo).

v2 gets the pronunciation from g2pk2 (MeCab-based), which is not installable offline here, so the standard
pronunciation rules that matter most are applied directly on the syllables: liaison, final-consonant
neutralization, nasalization, liquidization, aspiration, tensification after obstruents and palatalization.
Word-specific exceptions g2pk2 takes from its dictionary (e.g. some tensification in compounds) are not covered.
Digits are read as Sino-Korean numbers, Latin letters by their Korean letter names.
"""

from __future__ import annotations

import re

from gpt_sovits_train.text.symbols import is_symbol

_HANGUL_BASE, _HANGUL_LAST = 0xAC00, 0xD7A3
INITIALS = list("ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ")
VOWELS = list("ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ")
FINALS = ["", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"]
# v2 has only the 10 simple vowels; the others are written as two (glide + vowel).
VOWEL_SPLIT = {"ㅑ": "ㅣㅏ", "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ",
               "ㅛ": "ㅣㅗ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅠ": "ㅣㅜ", "ㅢ": "ㅡㅣ"}
# Complex finals in written order: before a vowel the second consonant moves to the next syllable.
COMPLEX_FINALS = {"ㄳ": ("ㄱ", "ㅅ"), "ㄵ": ("ㄴ", "ㅈ"), "ㄶ": ("ㄴ", "ㅎ"), "ㄺ": ("ㄹ", "ㄱ"), "ㄻ": ("ㄹ", "ㅁ"),
                  "ㄼ": ("ㄹ", "ㅂ"), "ㄽ": ("ㄹ", "ㅅ"), "ㄾ": ("ㄹ", "ㅌ"), "ㄿ": ("ㄹ", "ㅍ"), "ㅀ": ("ㄹ", "ㅎ"),
                  "ㅄ": ("ㅂ", "ㅅ")}
# ... and before a consonant or at the end only one of the two is said (읽다 -> 익따, 넓다 -> 널따).
COMPLEX_SPOKEN = dict(zip("ㄳㄵㄶㄺㄻㄼㄽㄾㄿㅀㅄ", "ㄱㄴㄴㄱㅁㄹㄹㄹㅂㄹㅂ"))
# The seven sounds a syllable can end in.
NEUTRAL_FINAL = {
    "ㄱ": "ㄱ", "ㄲ": "ㄱ", "ㅋ": "ㄱ", "ㄴ": "ㄴ", "ㄷ": "ㄷ", "ㅅ": "ㄷ", "ㅆ": "ㄷ", "ㅈ": "ㄷ", "ㅊ": "ㄷ",
    "ㅌ": "ㄷ", "ㅎ": "ㄷ", "ㄹ": "ㄹ", "ㅁ": "ㅁ", "ㅂ": "ㅂ", "ㅍ": "ㅂ", "ㅇ": "ㅇ", "": "",
}
TENSE = {"ㄱ": "ㄲ", "ㄷ": "ㄸ", "ㅂ": "ㅃ", "ㅅ": "ㅆ", "ㅈ": "ㅉ"}
ASPIRATED = {"ㄱ": "ㅋ", "ㄷ": "ㅌ", "ㅂ": "ㅍ", "ㅈ": "ㅊ"}
NASAL = {"ㄱ": "ㅇ", "ㄷ": "ㄴ", "ㅂ": "ㅁ"}
LETTER_NAMES = dict(zip("abcdefghijklmnopqrstuvwxyz", [
    "에이", "비", "씨", "디", "이", "에프", "지", "에이치", "아이", "제이", "케이", "엘", "엠",
    "엔", "오", "피", "큐", "알", "에스", "티", "유", "브이", "더블유", "엑스", "와이", "제트"]))
_DIGITS = ["", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]
PUNCTUATION_MAP_KO = {"。": ".", "，": ",", "、": ",", "！": "!", "？": "?", ";": ",", ":": ",", "；": ",", "：": ",",
                      "~": "-", "…": "…", ".": ".", ",": ",", "!": "!", "?": "?", "-": "-"}
SPACE, UNKNOWN = "空", "停"


def sino_korean(number: int) -> str:
    """12345 -> 만이천삼백사십오 (Sino-Korean; a leading 일 is dropped before 십/백/천/만 as Korean does)."""
    if number == 0:
        return "영"
    words = []
    for unit_value, unit in ((10 ** 12, "조"), (10 ** 8, "억"), (10 ** 4, "만"), (1, "")):
        group, number = divmod(number, unit_value)
        if not group:
            continue
        text = ""
        for value, name in ((1000, "천"), (100, "백"), (10, "십"), (1, "")):
            digit, group = divmod(group, value)
            if digit:
                text += ("" if digit == 1 and name else _DIGITS[digit]) + name
        words.append("" if unit == "만" and text == "일" else text)  # 10000 is 만, not 일만
        words.append(unit)
    return "".join(words)


def normalize_ko(text: str) -> str:
    """Digits -> Sino-Korean, Latin letters -> letter names, runs of punctuation -> their first mark."""
    text = re.sub(r"\d+(?:\.\d+)?", lambda m: _read_number(m.group(0)), text)
    text = re.sub(r"[A-Za-z]", lambda m: LETTER_NAMES[m.group(0).lower()], text)
    text = re.sub(r"\s+", " ", text).strip()  # a space is a phone (空) in v2 Korean: one per gap, none at the ends
    return re.sub(r"([.,!?…])[.,!?…]+", r"\1", text)


def _read_number(number: str) -> str:
    integer, _, fraction = number.partition(".")
    words = sino_korean(int(integer))
    if fraction:
        words += "점" + "".join(_DIGITS[int(d)] or "영" for d in fraction)
    return words


def _decompose(char: str) -> list[str] | None:
    code = ord(char)
    if not _HANGUL_BASE <= code <= _HANGUL_LAST:
        return None
    offset = code - _HANGUL_BASE
    return [INITIALS[offset // 588], VOWELS[(offset % 588) // 28], FINALS[offset % 28]]


def _apply_rules(syllables: list[list[str]]) -> None:
    """Rewrite [initial, vowel, final] triples in place with the pronunciation rules, left to right."""
    for index in range(len(syllables) - 1):
        current, following = syllables[index], syllables[index + 1]
        final, initial = current[2], following[0]
        if not final:
            continue
        if initial == "ㅇ":  # liaison: the final is pronounced as the next initial
            kept, moved = COMPLEX_FINALS.get(final, ("", final))
            if moved == "ㅎ":
                moved = ""  # 좋아 -> 조아
            if moved == "ㅇ":
                continue
            if moved in {"ㄷ", "ㅌ"} and following[1] == "ㅣ":
                moved = "ㅈ" if moved == "ㄷ" else "ㅊ"  # palatalization: 같이 -> 가치
            if NEUTRAL_FINAL.get(kept) in {"ㄱ", "ㄷ", "ㅂ"} and moved in TENSE:
                moved = TENSE[moved]  # 값이 -> 갑씨
            current[2], following[0] = kept, moved or "ㅇ"
            continue
        if final in {"ㅎ", "ㄶ", "ㅀ"} and initial in ASPIRATED:  # 좋고 -> 조코
            current[2], following[0] = ("" if final == "ㅎ" else COMPLEX_FINALS[final][0]), ASPIRATED[initial]
            continue
        sound = NEUTRAL_FINAL.get(COMPLEX_SPOKEN.get(final, final), "")
        if initial == "ㅎ" and sound in ASPIRATED:  # 축하 -> 추카
            current[2], following[0] = "", ASPIRATED[sound]
            continue
        if sound in NASAL and initial in {"ㄴ", "ㅁ"}:  # 국물 -> 궁물
            sound = NASAL[sound]
        elif sound in NASAL and initial == "ㄹ":  # 독립 -> 동닙
            sound, following[0] = NASAL[sound], "ㄴ"
        elif sound in {"ㅁ", "ㅇ"} and initial == "ㄹ":  # 심리 -> 심니
            following[0] = "ㄴ"
        elif (sound == "ㄴ" and initial == "ㄹ") or (sound == "ㄹ" and initial == "ㄴ"):  # 신라 -> 실라
            sound, following[0] = "ㄹ", "ㄹ"
        elif sound in {"ㄱ", "ㄷ", "ㅂ"} and initial in TENSE:  # 학교 -> 학꾜
            following[0] = TENSE[initial]
        current[2] = sound
    if syllables:
        last = syllables[-1]
        last[2] = NEUTRAL_FINAL.get(COMPLEX_SPOKEN.get(last[2], last[2]), "")


def g2p_ko(norm_text: str) -> list[str]:
    """Jamo phones for normalized Korean text; spaces become 空, unknown characters 停 (the v2 conventions)."""
    phones: list[str] = []
    for word in re.split(r"(\s+|[.,!?…\-。，、！？;:；：~])", norm_text):
        if not word:
            continue
        if word.isspace():
            phones.append(SPACE)
            continue
        if word in PUNCTUATION_MAP_KO:
            phones.append(PUNCTUATION_MAP_KO[word])
            continue
        syllables: list[list[str]] = []
        for char in word:
            parts = _decompose(char)
            if parts is None:  # a stray jamo or symbol inside a word: flush and mark it
                phones.extend(_jamo(syllables))
                syllables = []
                phones.append(char)
                continue
            syllables.append(parts)
        phones.extend(_jamo(syllables))
    pieces = [piece for phone in phones for piece in VOWEL_SPLIT.get(phone, phone)]
    return [piece if is_symbol(piece) else UNKNOWN for piece in pieces]


def _jamo(syllables: list[list[str]]) -> list[str]:
    _apply_rules(syllables)
    return [part for syllable in syllables for part in syllable if part]

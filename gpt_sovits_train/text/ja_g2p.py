"""Japanese G2P: pyopenjtalk phonemes with pitch-accent marks, as v2 feeds them to its models.

Per run of Japanese characters, OpenJTalk full-context labels give phonemes plus accent information; from them we
insert ``[`` (pitch rises), ``]`` (pitch falls) and an accent-phrase boundary.  v2's symbol table has no boundary
symbol, so v2 data carries ``UNK`` there; pretrained v2 models expect exactly that, so we emit ``UNK`` too.
"""

from __future__ import annotations

import re

import pyopenjtalk

from gpt_sovits_train.text.symbols import UNK

# Characters OpenJTalk can read; anything else separates runs (punctuation) or is dropped.
_JAPANESE_RUN = re.compile(
    r"[A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d]+"
)
PUNCTUATION_MAP_JA = {"、": ",", "。": ".", "！": "!", "？": "?", "，": ",", "．": ".", "：": ",", "；": ",", "…": "…",
                      "・": ",", "!": "!", "?": "?", ",": ",", ".": ".", ":": ",", ";": ",", "―": "-", "ー": "-",
                      "～": "-", "~": "-", "-": "-"}
_ACCENT_BOUNDARY = UNK


def _number(pattern: str, label: str) -> int | None:
    match = re.search(pattern, label)
    if match is None or match.group(1) in {"xx", "-"}:
        return None
    return int(match.group(1))


def _prosody_phones(run: str) -> list[str]:
    """Phonemes and accent marks of one run, without the utterance start/end marks."""
    labels = pyopenjtalk.extract_fullcontext(run)
    phones: list[str] = []
    for index, label in enumerate(labels):
        phoneme = re.search(r"-(.*?)\+", label).group(1)
        if phoneme == "sil":
            continue
        if phoneme == "pau":
            phones.append("_")
            continue
        phones.append(phoneme.lower() if phoneme in "AEIOU" else phoneme)  # unvoiced vowels as plain vowels
        # a1: mora position relative to the accent nucleus; a2/a3: mora index from the phrase start/end.
        a1 = _number(r"/A:([0-9\-]+)\+", label)
        a2 = _number(r"\+(\d+)\+", label)
        a3 = _number(r"\+(\d+)/", label)
        moras_in_phrase = _number(r"/F:(\d+)_", label)
        next_label = labels[index + 1] if index + 1 < len(labels) else ""
        a2_next = _number(r"\+(\d+)\+", next_label)
        next_is_silence = re.search(r"-(.*?)\+", next_label) is None or \
            re.search(r"-(.*?)\+", next_label).group(1) in {"sil", "pau"}
        if a3 == 1 and a2_next == 1 and phoneme in "aeiouAEIOUNcl" and not next_is_silence:
            phones.append(_ACCENT_BOUNDARY)
        elif a1 == 0 and a2 is not None and a2_next == a2 + 1 and a2 != moras_in_phrase:
            phones.append("]")
        elif a2 == 1 and a2_next == 2:
            phones.append("[")
    return phones


def normalize_ja(text: str) -> str:
    """v2 Japanese normalization: only collapse runs of punctuation to their first mark."""
    return re.sub(r"([、。！？，．・…!?,.])[、。！？，．・…!?,.]+", r"\1", text.strip())


def g2p_ja(norm_text: str) -> list[str]:
    """Phones for normalized Japanese text; punctuation between runs becomes v2 punctuation phones."""
    text = norm_text.replace("％", "パーセント").replace("%", "パーセント")
    phones: list[str] = []
    position = 0
    for match in _JAPANESE_RUN.finditer(text):
        phones.extend(_marks(text[position:match.start()]))
        phones.extend(_prosody_phones(match.group(0)))
        position = match.end()
    phones.extend(_marks(text[position:]))
    return phones


def _marks(between: str) -> list[str]:
    return [PUNCTUATION_MAP_JA[char] for char in between if char in PUNCTUATION_MAP_JA]

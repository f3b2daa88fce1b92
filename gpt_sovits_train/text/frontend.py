"""Text -> v2 phones, ids and word2ph: the one entry point data prep and inference call.

``phonemize`` segments the text into language runs, normalizes and converts each run with its language's frontend
and concatenates the results.  Every phone is checked against the v2 table: anything else becomes ``UNK`` with a
warning, so no wrong id is ever produced silently.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from gpt_sovits_train.text.en_g2p import g2p_en
from gpt_sovits_train.text.en_normalize import normalize_en
from gpt_sovits_train.text.errors import DroppedTextWarning, UnknownPhoneWarning, UnsupportedTextError
from gpt_sovits_train.text.ja_g2p import g2p_ja, normalize_ja
from gpt_sovits_train.text.ko_g2p import g2p_ko, normalize_ko
from gpt_sovits_train.text.segmenter import SUPPORTED_LANGUAGES, segment
from gpt_sovits_train.text.sentences import split_sentences
from gpt_sovits_train.text.symbols import UNK, is_symbol, symbols_to_ids
from gpt_sovits_train.text.zh_g2p import g2p_zh
from gpt_sovits_train.text.zh_normalize import normalize_zh

__all__ = [
    "DroppedTextWarning",
    "Phonemized",
    "UnknownPhoneWarning",
    "UnsupportedTextError",
    "phonemize",
    "split_sentences",
]

#: English output shorter than this gets a leading ',' (v2 does this; the pretrained models saw it in training).
MIN_ENGLISH_PHONES = 4


@dataclass
class Phonemized:
    """Frontend output.

    ``word2ph`` has one entry per character of a Chinese ``norm_text`` (phones per character, summing to
    ``len(phones)``) so BERT character features can be expanded to phone rate; it is ``None`` for other languages
    and for mixed text, whose ``segments`` (one per language run) each carry their own.  ``segments`` is empty
    when the text is a single language.
    """

    phones: list[str]
    ids: list[int]
    word2ph: list[int] | None
    norm_text: str
    language: str
    segments: list[Phonemized] = field(default_factory=list)

    @property
    def runs(self) -> list[Phonemized]:
        """The language runs: ``segments`` for mixed text, else ``[self]``."""
        return self.segments or [self]


def _checked(phones: list[str], text: str) -> list[str]:
    unknown = sorted({phone for phone in phones if not is_symbol(phone)})
    if unknown:
        warnings.warn(f"phones {unknown} from {text!r} are not v2 symbols; replaced by {UNK}", UnknownPhoneWarning,
                      stacklevel=3)
        phones = [phone if is_symbol(phone) else UNK for phone in phones]
    return phones


def _phonemize_run(text: str, language: str, standalone: bool) -> Phonemized:
    word2ph: list[int] | None = None
    if language == "zh":
        norm_text = normalize_zh(text)
        phones, word2ph = g2p_zh(norm_text)
    elif language == "en":
        norm_text = normalize_en(text)
        phones = g2p_en(norm_text)
        if standalone and phones and len(phones) < MIN_ENGLISH_PHONES:
            phones = [",", *phones]
    elif language == "ja":
        norm_text = normalize_ja(text)
        phones = g2p_ja(norm_text)
    elif language == "ko":
        norm_text = normalize_ko(text)
        phones = g2p_ko(norm_text)
    else:  # segment() only produces the languages above
        raise UnsupportedTextError(f"no frontend for language {language!r} (text {text!r})")
    phones = _checked(phones, text)
    return Phonemized(phones, symbols_to_ids(phones), word2ph, norm_text, language)


def _merge_neighbours(results: list[Phonemized]) -> list[Phonemized]:
    """Join runs of the same language that became neighbours (a silent run between them produced no phones)."""
    merged: list[Phonemized] = []
    for result in results:
        if merged and merged[-1].language == result.language:
            previous = merged[-1]
            word2ph = None if previous.word2ph is None else [*previous.word2ph, *(result.word2ph or [])]
            merged[-1] = Phonemized(previous.phones + result.phones, previous.ids + result.ids, word2ph,
                                    previous.norm_text + result.norm_text, previous.language)
        else:
            merged.append(result)
    return merged


def phonemize(text: str, language: str = "auto") -> Phonemized:
    """Convert text to v2 phones.

    ``language`` is ``"zh"``, ``"en"``, ``"ja"``, ``"ko"`` or ``"auto"``.  The hint decides how Han characters
    and language-less text (digits, punctuation) are read.  Latin words are always read as English (the v2
    "all_zh" behaviour, rather than deleting the letters), kana as Japanese and Hangul as Korean, because no other
    frontend can pronounce them.  Other scripts (Cyrillic, Arabic, Thai, ...) raise :class:`UnsupportedTextError`
    naming the span.
    """
    if not isinstance(text, str):
        raise TypeError(f"phonemize expects a string, got {type(text).__name__}")
    if language not in SUPPORTED_LANGUAGES:
        raise UnsupportedTextError(
            f"language {language!r} is not supported for {text[:40]!r}; use one of {', '.join(SUPPORTED_LANGUAGES)}"
        )
    text = re.sub(r" {2,}", " ", text)
    runs = segment(text, language)
    results = [_phonemize_run(run.text, run.language, standalone=len(runs) == 1) for run in runs]
    results = _merge_neighbours([result for result in results if result.phones or len(results) == 1])
    if not results:
        fallback = "zh" if language == "auto" else language
        return Phonemized([], [], [] if fallback == "zh" else None, "", fallback)
    if len(results) == 1:
        return results[0]
    phones = [phone for result in results for phone in result.phones]
    languages = [result.language for result in results]
    return Phonemized(
        phones=phones,
        ids=[index for result in results for index in result.ids],
        word2ph=None,
        norm_text="".join(result.norm_text for result in results),
        language=languages[0] if len(set(languages)) == 1 else "mixed",
        segments=results,
    )

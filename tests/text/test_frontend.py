"""Behaviour of the public frontend: segmentation, overrides, edge cases, errors, sentence splitting."""

from __future__ import annotations

import warnings

import pytest

from gpt_sovits_train.text.en_normalize import normalize_en
from gpt_sovits_train.text.frontend import UnsupportedTextError, phonemize, split_sentences
from gpt_sovits_train.text.symbols import PUNCTUATION, UNK
from gpt_sovits_train.text.zh_g2p import UnknownPinyinWarning, syllable_to_phones
from gpt_sovits_train.text.zh_normalize import DroppedTextWarning, normalize_zh


def test_issue_example_is_segmented_into_language_runs(well_formed) -> None:
    result = phonemize("我今天买了3个iPhone, it costs $999.", "auto")
    assert [run.language for run in result.segments] == ["zh", "en"]
    assert result.language == "mixed"
    assert result.segments[0].norm_text == "我今天买了三个"
    assert result.segments[0].phones[-4:] == ["s", "an1", "g", "e5"]
    assert result.segments[1].norm_text == "iPhone, it costs nine hundred ninety-nine dollars."
    assert result.segments[1].phones[:4] == ["AY1", "F", "OW2", "N"]
    assert result.word2ph is None and result.segments[0].word2ph == [2] * 7
    well_formed(result, allow_unk=False)


def test_han_reading_follows_the_language_hint_and_kana() -> None:
    assert phonemize("東京", "zh").phones == ["d", "ong1", "j", "ing1"]
    assert phonemize("東京", "ja").language == "ja"
    assert phonemize("東京に行きます。", "auto").language == "ja"
    assert phonemize("东京很大。", "auto").language == "zh"


def test_latin_words_in_chinese_are_read_not_deleted() -> None:
    result = phonemize("这个bug我已经fix好了。", "zh")
    assert [run.language for run in result.segments] == ["zh", "en", "zh", "en", "zh"]
    assert result.segments[1].phones == ["B", "AH1", "G"]  # no v2 ',' in front inside a sentence


def test_units_stay_with_their_number() -> None:
    assert phonemize("他重80kg。", "zh").norm_text == "他重八十千克."
    assert phonemize("It weighs 80kg.", "en").norm_text == "It weighs eighty kilograms."


def test_short_standalone_english_gets_the_v2_leading_comma() -> None:
    assert phonemize("Hi!", "en").phones == [",", "HH", "AY1", "!"]


@pytest.mark.parametrize("language", ["zh", "en", "ja", "ko", "auto"])
def test_empty_and_whitespace_text(language: str) -> None:
    for text in ("", "   "):
        result = phonemize(text, language)
        assert result.phones == [] and result.ids == []


def test_only_punctuation(well_formed) -> None:
    result = phonemize("。，！？", "zh")
    assert result.phones and all(phone in PUNCTUATION for phone in result.phones)
    well_formed(result, allow_unk=False)


def test_emoji_is_dropped_with_a_warning() -> None:
    with pytest.warns(DroppedTextWarning, match="😀"):
        result = phonemize("今天很开心😀", "zh")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert result.phones == phonemize("今天很开心", "zh").phones


def test_silent_run_between_same_language_runs_is_merged(well_formed) -> None:
    result = phonemize("你好ー世界", "zh")  # a lone prolonged-sound mark is a Japanese run with no phones
    assert result.language == "zh" and not result.segments
    assert result.word2ph == [2, 2, 2, 2] and result.norm_text == "你好世界"
    well_formed(result, allow_unk=False)


def test_very_long_text_is_well_formed(well_formed) -> None:
    text = "今天天气很好，我们去公园散步吧！It is a nice day. " * 40
    result = phonemize(text, "auto")
    assert len(result.phones) > 1500
    well_formed(result, allow_unk=False)


@pytest.mark.parametrize(("text", "span"), [("Привет мир, как дела", "Привет мир"), ("你好مرحبا", "مرحبا"),
                                            ("hello שלום", "שלום")])
def test_unsupported_script_names_the_span(text: str, span: str) -> None:
    with pytest.raises(UnsupportedTextError, match=span):
        phonemize(text, "auto")


@pytest.mark.parametrize(("text", "expected"), [
    ("안녕하세요.", "ㅇㅏㄴㄴㅣㅓㅇㅎㅏㅅㅔㅇㅣㅗ."),  # compound vowels split: ㅕ -> ㅣㅓ, ㅛ -> ㅣㅗ
    ("국물", "ㄱㅜㅇㅁㅜㄹ"),  # nasalization
    ("신라", "ㅅㅣㄹㄹㅏ"),  # liquidization
    ("같이", "ㄱㅏㅊㅣ"),  # palatalization
    ("좋고", "ㅈㅗㅋㅗ"),  # aspiration
    ("학교", "ㅎㅏㄱㄲㅣㅗ"),  # tensification
    ("읽어요", "ㅇㅣㄹㄱㅓㅇㅣㅗ"),  # liaison of a complex final
    ("닭", "ㄷㅏㄱ"),  # a complex final alone keeps one consonant
    ("저는 학생", "ㅈㅓㄴㅡㄴ空ㅎㅏㄱㅆㅐㅇ"),  # a space is 空
    ("3개", "ㅅㅏㅁㄱㅐ"),  # Sino-Korean number
])
def test_korean_pronunciation_rules(text: str, expected: str, well_formed) -> None:
    result = phonemize(text, "ko")
    assert "".join(result.phones) == expected
    assert result.language == "ko"
    well_formed(result, allow_unk=False)


def test_korean_in_auto_mode_with_english() -> None:
    result = phonemize("저는 Python을 좋아해요.", "auto")
    assert [run.language for run in result.runs] == ["ko", "en", "ko"]


def test_unsupported_language_is_one_clear_error() -> None:
    with pytest.raises(UnsupportedTextError, match="'fr' is not supported"):
        phonemize("bonjour", "fr")
    with pytest.raises(TypeError):
        phonemize(None)  # type: ignore[arg-type]


def test_unknown_pinyin_becomes_unk_with_a_warning() -> None:
    with pytest.warns(UnknownPinyinWarning):
        assert syllable_to_phones("x", "ong1") == [UNK, UNK]


@pytest.mark.parametrize(("text", "expected"), [
    ("2024年3月15日", "二零二四年三月十五日"),
    ("2024-03-15", "二零二四年三月十五日"),
    ("下午3:30", "下午三点半"),
    ("10:05:20", "十点零五分二十秒"),
    ("增长了12.5%", "增长了百分之十二点五"),
    ("￥120", "一百二十元"),
    ("$5.5", "五点五美元"),
    ("3/4", "四分之三"),
    ("2个人", "两个人"),
    ("第2名", "第二名"),
    ("2年级", "二年级"),
    ("下午2点", "下午两点"),
    ("10%-20%", "百分之十到百分之二十"),
    ("1,234,567字", "一百二十三万四千五百六十七字"),
    ("128号", "幺二八号"),
    ("-5", "负五"),
    ("3-5天", "三到五天"),
    ("5-3=2", "五减三等于二"),
    ("100km", "一百千米"),
    ("①", "一"),
    ("你好；再见：", "你好,再见,"),
])
def test_chinese_normalization(text: str, expected: str) -> None:
    assert normalize_zh(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("It is 10:30 a.m.", "It is ten thirty A M."),
    ("at 7:05", "at seven oh five"),
    ("$12.99", "twelve dollars and ninety-nine cents"),
    ("$1", "one dollar"),
    ("£4.2 million", "four point two million pounds"),
    ("$1,250", "one thousand two hundred fifty dollars"),
    ("in 1998", "in nineteen ninety-eight"),
    ("in 2008", "in two thousand eight"),
    ("1,234 cars", "one thousand two hundred thirty-four cars"),
    ("the 21st", "the twenty-first"),
    ("50%", "fifty percent"),
    ("-12 degrees", "minus twelve degrees"),
    ("2/3 cup", "two thirds cup"),
    ("1/2", "one half"),
    ("20km", "twenty kilometers"),
    ("Dr. Smith", "Doctor Smith"),
    ("a; b: c", "a, b, c"),
    ("café", "cafe"),
    ("in the U.S. since", "in the U S since"),
    ("the 1990s and 80s", "the nineteen nineties and eighties"),
    ("H2O", "H two O"),
    ("#1 (best) ~5", "number one best about five"),
])
def test_english_normalization(text: str, expected: str) -> None:
    assert normalize_en(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Please read it.", ["R", "IY1", "D"]),
    ("I read it yesterday.", ["R", "EH1", "D"]),
    ("We live here.", ["L", "IH1", "V"]),
    ("A live show.", ["L", "AY1", "V"]),
    ("They record it.", ["R", "IH0", "K", "AO1", "R", "D"]),
    ("The record.", ["R", "EH1", "K", "ER0", "D"]),
])
def test_english_homographs_follow_context(text: str, expected: list[str]) -> None:
    phones = phonemize(text, "en").phones
    assert any(phones[i:i + len(expected)] == expected for i in range(len(phones))), phones


def test_unknown_english_word_uses_the_oov_model_and_symbols_stay_in_table(well_formed) -> None:
    result = phonemize("The zorblax glimmertron.", "en")
    assert result.phones[2:4] == ["Z", "AO1"]
    well_formed(result, allow_unk=False)


def test_dropped_symbols_warn_in_english_too() -> None:
    with pytest.warns(DroppedTextWarning, match="©"):
        assert phonemize("Hello © world", "en").norm_text == "Hello world"


def test_split_sentences_respects_length_and_keeps_text() -> None:
    text = "今天天气很好。我们去公园吧！Then we go home, and we rest. " + "很长的句子没有标点" * 30
    pieces = split_sentences(text, max_chars=40)
    assert all(0 < len(piece) <= 40 for piece in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert pieces[:3] == ["今天天气很好。", "我们去公园吧！", "Then we go home, and we rest."]


def test_split_sentences_ignores_abbreviation_dots() -> None:
    text = "Dr. Smith lives in the U.S. now. Pi is 3.14. 他说：“你好！”然后走了。"
    assert split_sentences(text) == ["Dr. Smith lives in the U.S. now.", "Pi is 3.14.", "他说：“你好！”", "然后走了。"]


def test_split_sentences_by_clause_then_length() -> None:
    pieces = split_sentences("one, two, three, four, five, six, seven, eight", max_chars=20)
    assert all(len(piece) <= 20 for piece in pieces)
    assert pieces[0].endswith(",")
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("text", max_chars=0)
    assert split_sentences("") == []

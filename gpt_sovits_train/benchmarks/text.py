"""Text frontend throughput: sentences per second per language (normalization + segmentation + G2P).

The sentence sets are the hand-written tables in ``tests/text`` when present (a checkout), else a small built-in
set (an installed wheel).  Lexicon/model loading is timed separately as ``warmup_s`` so that the per-sentence
figure is the steady-state cost data prep pays per utterance.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

_CASES_DIR = Path(__file__).resolve().parents[2] / "tests" / "text"
_BUILTIN = {
    "zh": [
        "今天是2024年3月15日，星期五。",
        "这台电脑的价格是5999元，比去年便宜了12.5%。",
        "一个人走在一条小路上，一边走一边唱歌。",
    ],
    "en": [
        "The ticket costs $12.99, but the VIP pass is $150.",
        "We're meeting on March 3rd at 10:30 a.m.",
        "The record shows that they record every meeting.",
    ],
    "ja": [
        "おはようございます、今日もよろしくお願いします。",
        "駅までどのくらいかかりますか？",
        "雨が降りそうなので、傘を持っていきましょう。",
    ],
    "ko": [
        "안녕하세요, 만나서 반갑습니다.",
        "저는 학생입니다. 학교에 갑니다.",
        "오늘 날씨가 정말 좋네요!",
        "이 책은 3만 원입니다.",
        "같이 점심 먹을까요?",
    ],
    "auto": [
        "我今天买了3个iPhone, it costs $999.",
        "这个bug我已经fix好了，你再test一下。",
        "周末我们去看了Avengers，特效非常震撼。",
    ],
}


def _sentences(language: str) -> list[str]:
    path = _CASES_DIR / f"cases_{'mixed' if language == 'auto' else language}.jsonl"
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line)["text"] for line in handle if line.strip()]
    return list(_BUILTIN[language])


def run_text_frontend(quick: bool = False) -> dict:
    """Sentences/s and phones/s per language; ``quick`` uses 5 sentences per language."""
    start = time.perf_counter()
    from gpt_sovits_train.text.frontend import phonemize

    phonemize("预热。Warm up.", "auto")  # loads jieba, the CMU dictionary and OpenJTalk once
    phonemize("こんにちは。", "ja")
    figures: dict[str, object] = {"warmup_s": round(time.perf_counter() - start, 3)}
    repeats = 1  # one pass: repeated passes would only measure the per-word caches
    for language in ("zh", "en", "ja", "ko", "auto"):
        sentences = _sentences(language)[: 5 if quick else None]
        phones = 0
        begin = time.perf_counter()
        for _ in range(repeats):
            for sentence in sentences:
                phones += len(phonemize(sentence, language).phones)
        elapsed = time.perf_counter() - begin
        figures[language] = {
            "sentences": len(sentences) * repeats,
            "sentences_per_s": round(len(sentences) * repeats / elapsed, 1),
            "phones_per_s": round(phones / elapsed, 1),
        }
    return figures

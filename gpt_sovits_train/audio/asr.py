"""Speech recognition backends: a recording in, its text (and language) out.

Used where audio arrives without a transcript: the cloning workflow drafts an editable ``.list`` from its
segments, ``gst-prepare`` transcribes the clips it slices from untranscribed recordings
(``audio.slice_long_inputs``), and ``gst-evaluate`` scores synthesized speech. Backends share
``asr(wav, sample_rate) -> Transcript``:

* ``TransformersASR``: any ``automatic-speech-recognition`` pipeline model by local path or
  hub id (``openai/whisper-small`` for zh/en/ja, a wav2vec2 CTC model, ...).
* ``PocketsphinxASR``: offline English; the ``pocketsphinx`` wheel ships its en-US model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gpt_sovits_train.audio.io import resample

ASR_RATE = 16000
LANGUAGES = ("auto", "zh", "en", "ja")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str


def guess_language(text: str, default: str = "en") -> str:
    """zh if the text holds Han characters, ja if it holds kana, else ``default``: what v2's frontend needs."""
    if _KANA.search(text):
        return "ja"
    if _HAN.search(text):
        return "zh"
    return default


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return language


class TransformersASR:
    """A ``transformers`` ASR pipeline; ``language`` is forced for Whisper-family models."""

    def __init__(
        self,
        model: str,
        language: str = "auto",
        device: str = "cpu",
        dtype: str | None = None,
        max_new_tokens: int | None = 128,
    ) -> None:
        from transformers import pipeline

        self.language = _check_language(language)
        try:
            self.pipe = pipeline("automatic-speech-recognition", model=model, device=device, dtype=dtype)
        except OSError as err:
            raise OSError(
                f"could not load ASR model {model!r}: pass a local folder with its config and weights, or a "
                "hub id that is already in the Hugging Face cache (this workflow never downloads at run time)"
            ) from err
        self.is_whisper = getattr(self.pipe.model.config, "model_type", "") == "whisper"
        self.max_new_tokens = max_new_tokens

    def __call__(self, wav: np.ndarray, sample_rate: int) -> Transcript:
        audio = resample(wav, sample_rate, ASR_RATE).numpy()
        kwargs: dict = {}
        if self.is_whisper:
            generate = {"task": "transcribe"}
            if self.language != "auto":
                generate["language"] = self.language
            if self.max_new_tokens:
                generate["max_new_tokens"] = self.max_new_tokens
            kwargs["generate_kwargs"] = generate
        result = self.pipe({"raw": audio, "sampling_rate": ASR_RATE}, **kwargs)
        text = str(result["text"]).strip()
        language = self.language if self.language != "auto" else guess_language(text)
        return Transcript(text, language)


class PocketsphinxASR:
    """CMU PocketSphinx with the en-US acoustic and language model inside its wheel (English only)."""

    def __init__(self, language: str = "en") -> None:
        if _check_language(language) not in ("auto", "en"):
            raise ValueError(f"PocketsphinxASR only ships an English model; use TransformersASR for {language!r}")
        try:
            from pocketsphinx import Decoder
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                "PocketsphinxASR needs the optional 'pocketsphinx' package: pip install pocketsphinx"
            ) from err
        self.decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")

    def __call__(self, wav: np.ndarray, sample_rate: int) -> Transcript:
        audio = resample(wav, sample_rate, ASR_RATE).numpy()
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return Transcript(hypothesis.hypstr.strip() if hypothesis else "", "en")

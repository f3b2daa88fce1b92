"""End-to-end synthesis: text + reference clip → 32 kHz speech in the reference voice.

Pipeline (the v2 inference recipe):

1. **reference**: the 3–10 s clip at 16 kHz (+0.3 s of silence, as v2 does) → HuBERT → SoVITS ``extract_latent``
   = the semantic *prompt*; the same clip at 32 kHz → linear spectrogram = the timbre reference for decoding.
   A SoVITS network with ``content_source="encodec"`` takes its prompt from the EnCodec tokenizer instead
   (codebook 0 brought to 25 Hz by ``codec_content_tokens``, the rule its training data used), and one with
   ``speaker_dim > 0`` also gets an ECAPA embedding of the speaker (from ``Reference.speaker_audio`` when given —
   longer audio gives a steadier embedding — else from the clip itself).
2. **frontend**: reference transcript and target text → v2 phone ids (+ BERT features for Chinese runs, zeros
   otherwise); the target is split into sentences so the GPT sees short sequences.
3. **gpt**: for each sentence, autoregressive semantic tokens continuing the prompt (KV-cache sampling).
4. **sovits**: tokens + sentence phones + reference spectrogram → waveform.
5. sentences are joined with short pauses and written with the AI-generated notice in the file metadata.

Without a reference transcript the prompt is left out ("reference-free" mode): the voice then comes only from the
spectrogram reference, which is weaker but needs no transcript.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from gpt_sovits_train.audio.ai_metadata import AIMetadata, write_audio_with_ai_metadata
from gpt_sovits_train.audio.io import load_mono, resample
from gpt_sovits_train.audio.spectrogram import linear_spectrogram
from gpt_sovits_train.constants import BERT_DIM, SAMPLE_RATE, SEMANTIC_HZ, SPEAKER_SAMPLE_RATE, SSL_SAMPLE_RATE
from gpt_sovits_train.models.gpt.sampling import SamplingOptions
from gpt_sovits_train.text.frontend import Phonemized, phonemize, split_sentences

log = logging.getLogger(__name__)

REFERENCE_SECONDS = (3.0, 10.0)
PROMPT_SILENCE_SECONDS = 0.3


class SoVITSNetwork(Protocol):
    """What the synthesizer needs from the SoVITS generator (``docs/design.md``, Networks)."""

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor: ...

    def decode(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        refer_spec: torch.Tensor,
        noise_scale: float,
        speed: float,
        speaker_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


@dataclass
class SamplingSettings:
    """GPT sampling and SoVITS decoding knobs: the one place their defaults live (``conf/synthesize.yaml``'s
    ``sampling:`` mirrors it, a test checks). GPT defaults are :class:`SamplingOptions`' (the v2 web UI's); the GPT
    decodes with v2's rules (:meth:`gpt_options`)."""

    top_k: int = SamplingOptions.top_k
    top_p: float = SamplingOptions.top_p
    temperature: float = SamplingOptions.temperature
    repetition_penalty: float = SamplingOptions.repetition_penalty
    speed: float = 1.0
    noise_scale: float = 0.5
    max_seconds: float = 54.0
    pause_seconds: float = 0.3
    max_sentence_chars: int = 100
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.top_k < 1 or not 0 < self.top_p <= 1 or self.temperature <= 0 or self.repetition_penalty <= 0:
            raise ValueError(
                f"invalid sampling settings top_k={self.top_k} top_p={self.top_p} temperature={self.temperature} "
                f"repetition_penalty={self.repetition_penalty}: need top_k>=1, 0<top_p<=1, temperature>0, penalty>0"
            )
        if not 0.25 <= self.speed <= 4.0:
            raise ValueError(f"speed {self.speed} is outside 0.25–4.0")

    def gpt_options(self) -> SamplingOptions:
        """The GPT's :class:`SamplingOptions`: v2's rules, at most ``max_seconds`` of tokens (+1, as v2's
        ``early_stop_num`` allows one more) per sentence."""
        return SamplingOptions.v2_compatible(
            top_k=self.top_k,
            top_p=self.top_p,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            max_new_tokens=int(SEMANTIC_HZ * self.max_seconds) + 1,
        )


@dataclass
class Reference:
    """The voice to clone: a short clip, optionally its transcript, and longer audio for the speaker embedding."""

    audio: str | Path
    text: str | None = None
    language: str = "auto"
    speaker_audio: str | Path | None = None


@dataclass
class PreparedReference:
    """Everything derived from the reference once and reused for every sentence."""

    prompt_semantic: torch.Tensor | None  # [1, S] or None in reference-free mode
    prompt_phones: list[int]
    prompt_bert: torch.Tensor  # [1024, P_prompt]
    refer_spec: torch.Tensor  # [1, 1025, T]
    speaker_embedding: torch.Tensor | None = None
    seconds: float = 0.0


@dataclass
class SynthesisResult:
    """Audio plus how long each stage took; ``rtf`` = compute seconds / audio seconds."""

    wav: torch.Tensor  # float32 [N] at sample_rate
    sample_rate: int
    sentences: list[str]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    semantic_tokens: list[torch.Tensor] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def duration(self) -> float:
        return self.wav.numel() / self.sample_rate

    @property
    def rtf(self) -> float:
        return sum(self.stage_seconds.values()) / max(self.duration, 1e-9)

    def stage_rtf(self) -> dict[str, float]:
        return {name: seconds / max(self.duration, 1e-9) for name, seconds in self.stage_seconds.items()}

    def report(self) -> str:
        stages = " ".join(f"{k}={v:.3f}" for k, v in self.stage_rtf().items())
        return f"audio {self.duration:.2f} s, RTF {self.rtf:.3f} ({stages})"


GenerateFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, SamplingSettings], torch.Tensor]
CodecFn = Callable[[torch.Tensor, int], torch.Tensor]  # (wav [N], sample rate) -> EnCodec codes [n_q, T75]


class _StageTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc: Any) -> None:
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.start

        return _Span()


class Synthesizer:
    """Python API: ``Synthesizer(...).synthesize(text, language, reference)``.

    ``generate`` runs the GPT stage: ``(phone_ids [1,P], bert [1,1024,P], prompt [1,S] | None, settings) ->
    new tokens [N]``; :func:`gpt_sovits_train.inference.factory.decoder_generate_fn` builds it. Feature
    extractors are the ``gpt_sovits_train.features`` classes (or anything with the same call signature):
    ``speaker_encoder`` is required when the SoVITS network has ``speaker_dim > 0``, ``codec_tokenizer`` when its
    ``content_source`` is ``"encodec"`` and a reference transcript is given.
    """

    def __init__(
        self,
        generate: GenerateFn,
        sovits: SoVITSNetwork,
        ssl_extractor: Callable[[torch.Tensor], torch.Tensor],
        bert_extractor: Callable[[str, list[int]], torch.Tensor] | None = None,
        speaker_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        model_name: str = "gpt_sovits_train voice",
        device: str | torch.device = "cpu",
        codec_tokenizer: CodecFn | None = None,
    ) -> None:
        self.generate = generate
        self.sovits = sovits
        self.ssl_extractor = ssl_extractor
        self.bert_extractor = bert_extractor
        self.speaker_encoder = speaker_encoder
        self.codec_tokenizer = codec_tokenizer
        self.model_name = model_name
        self.device = torch.device(device)
        self.speaker_dim = int(getattr(sovits, "speaker_dim", 0) or 0)
        self.content_source = str(getattr(sovits, "content_source", "ssl"))
        parameter = next(iter(sovits.parameters()), None) if isinstance(sovits, torch.nn.Module) else None
        self.sovits_dtype = parameter.dtype if parameter is not None else torch.float32
        if self.speaker_dim and speaker_encoder is None:
            raise ValueError(
                f"the SoVITS network is conditioned on a {self.speaker_dim}-d speaker embedding (speaker_dim > 0): "
                "configure a speaker encoder (features.speaker = gpt_sovits_train.features.speaker."
                "EcapaSpeakerEncoder) and optionally reference.speaker_audio"
            )

    # -- text ---------------------------------------------------------------------------------------------------
    def _bert_for(self, phonemized: Phonemized) -> torch.Tensor:
        """BERT features at phone rate: the Chinese extractor for ``zh`` runs, zeros elsewhere (as v2 does)."""
        parts = []
        for run in phonemized.runs:
            if run.language == "zh" and self.bert_extractor is not None and run.word2ph:
                parts.append(self.bert_extractor(run.norm_text, list(run.word2ph)).float())
            else:
                parts.append(torch.zeros(BERT_DIM, len(run.ids)))
        return torch.cat(parts, dim=1) if parts else torch.zeros(BERT_DIM, 0)

    def _phones(self, text: str, language: str) -> tuple[list[int], torch.Tensor]:
        phonemized = phonemize(text, language)
        if not phonemized.ids:
            raise ValueError(f"no pronounceable text in {text!r}; check the text and its language ({language!r})")
        return list(phonemized.ids), self._bert_for(phonemized)

    # -- reference ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare_reference(self, reference: Reference, check_duration: bool = True) -> PreparedReference:
        """Turn the reference clip (and transcript) into the prompt tokens, phones and timbre spectrogram."""
        wav32 = load_mono(reference.audio, SAMPLE_RATE)
        seconds = wav32.numel() / SAMPLE_RATE
        low, high = REFERENCE_SECONDS
        if check_duration and not low <= seconds <= high:
            raise ValueError(f"reference clip {reference.audio} is {seconds:.1f} s; use a {low:g}–{high:g} s clip")
        peak = float(wav32.abs().max())
        if peak > 1.0:
            wav32 = wav32 / peak
        refer_spec = linear_spectrogram(wav32.unsqueeze(0)).to(self.device)
        prompt_semantic, phones, bert = None, [], torch.zeros(BERT_DIM, 0)
        if reference.text:
            prompt_semantic = self._prompt_tokens(wav32)
            phones, bert = self._phones(reference.text, reference.language)
        embedding = None
        if self.speaker_dim:
            assert self.speaker_encoder is not None  # checked in __init__
            rate = SPEAKER_SAMPLE_RATE
            source = load_mono(reference.speaker_audio, rate) if reference.speaker_audio else None
            embedding = self.speaker_encoder(source if source is not None else resample(wav32, SAMPLE_RATE, rate))
        elif reference.speaker_audio:
            log.warning("reference.speaker_audio is ignored: this SoVITS network has no speaker conditioning")
        return PreparedReference(prompt_semantic, phones, bert, refer_spec, embedding, seconds)

    def _prompt_tokens(self, wav32: torch.Tensor) -> torch.Tensor:
        """The reference clip's content tokens ``[1, S]`` at 25 Hz, the kind the SoVITS network was trained on."""
        wav16 = resample(wav32, SAMPLE_RATE, SSL_SAMPLE_RATE)
        wav16 = torch.cat([wav16, torch.zeros(int(SSL_SAMPLE_RATE * PROMPT_SILENCE_SECONDS))])
        if self.content_source == "encodec":
            if self.codec_tokenizer is None:
                raise ValueError(
                    "the SoVITS network reads EnCodec content (content_source='encodec'): configure features.codec "
                    "(gpt_sovits_train.features.codec.EncodecTokenizer), or synthesize without reference.text"
                )
            from gpt_sovits_train.features.codec import codec_content_tokens

            content = codec_content_tokens(self.codec_tokenizer(wav16, SSL_SAMPLE_RATE)).unsqueeze(0).to(self.device)
        else:
            content = self.ssl_extractor(wav16).unsqueeze(0).to(self.device)  # [1, 768, T50]
        codes = self.sovits.extract_latent(content)  # [1, 1, T25]
        return codes[0, 0].unsqueeze(0).long()

    def decode_tokens(
        self, tokens: torch.Tensor, text_ids: torch.Tensor, ref: PreparedReference, settings: SamplingSettings
    ) -> torch.Tensor:
        """Semantic tokens ``[N]`` + phone ids ``[1,P]`` → float32 wav ``[M]`` on the CPU, in the reference voice."""
        extra = {}  # only speaker-conditioned networks are given the keyword
        if ref.speaker_embedding is not None and self.speaker_dim:
            extra["speaker_embedding"] = ref.speaker_embedding.reshape(1, -1).to(self.device, self.sovits_dtype)
        wav = self.sovits.decode(
            tokens.reshape(1, 1, -1).to(self.device),
            text_ids,
            ref.refer_spec.to(self.device, self.sovits_dtype),
            noise_scale=settings.noise_scale,
            speed=settings.speed,
            **extra,
        )
        return wav.reshape(-1).float().cpu()

    # -- synthesis ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _sentence(
        self, sentence: str, language: str, ref: PreparedReference, settings: SamplingSettings, timer: _StageTimer
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with timer("frontend"):
            phones, bert = self._phones(sentence, language)
        with timer("gpt"):
            all_phones = torch.tensor([ref.prompt_phones + phones], dtype=torch.long, device=self.device)
            all_bert = torch.cat([ref.prompt_bert, bert], dim=1).unsqueeze(0).to(self.device)
            prompt = ref.prompt_semantic.to(self.device) if ref.prompt_semantic is not None else None
            tokens = self.generate(all_phones, all_bert, prompt, settings).reshape(-1)
        if tokens.numel() == 0:
            raise RuntimeError(f"the GPT stage produced no tokens for {sentence!r}; try another seed or top_k")
        with timer("sovits"):
            text = torch.tensor([phones], dtype=torch.long, device=self.device)
            wav = self.decode_tokens(tokens, text, ref, settings)
            peak = float(wav.abs().max()) if wav.numel() else 0.0
            if peak > 1.0:
                wav = wav / peak
        return wav, tokens.cpu()

    def iter_sentences(
        self, text: str, language: str, reference: Reference | PreparedReference, settings: SamplingSettings
    ) -> Iterator[tuple[str, torch.Tensor, torch.Tensor, dict[str, float]]]:
        """Yield ``(sentence, wav, tokens, stage_seconds)`` one sentence at a time (sentence-level streaming)."""
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        timer = _StageTimer()
        if isinstance(reference, Reference):
            with timer("reference"):
                reference = self.prepare_reference(reference)
        sentences = [s for s in split_sentences(text, settings.max_sentence_chars) if s.strip()]
        if not sentences:
            raise ValueError("the text to synthesize is empty")
        before: dict[str, float] = {}  # the first sentence also carries the reference preparation time
        for sentence in sentences:
            wav, tokens = self._sentence(sentence, language, reference, settings, timer)
            spent = {k: v - before.get(k, 0.0) for k, v in timer.seconds.items()}
            before = dict(timer.seconds)
            yield sentence, wav, tokens, spent

    def synthesize(
        self,
        text: str,
        language: str,
        reference: Reference | PreparedReference,
        settings: SamplingSettings | None = None,
        output: str | Path | None = None,
        on_sentence: Callable[[int, int, str, int, float], None] | None = None,
    ) -> SynthesisResult:
        """Synthesize ``text``; with ``output`` also write the file (format from its suffix) with AI metadata.

        ``on_sentence(index, total, sentence, tokens, audio_seconds)`` is called after each sentence (progress on
        long texts: ``gst-synthesize`` prints it)."""
        settings = settings or SamplingSettings()
        pause = torch.zeros(int(SAMPLE_RATE * settings.pause_seconds))
        pieces, tokens, sentences, stages = [], [], [], {}
        total = len([s for s in split_sentences(text, settings.max_sentence_chars) if s.strip()])
        for sentence, wav, sentence_tokens, spent in self.iter_sentences(text, language, reference, settings):
            pieces += [wav, pause]
            tokens.append(sentence_tokens)
            sentences.append(sentence)
            if on_sentence is not None:
                on_sentence(len(sentences), total, sentence, int(sentence_tokens.numel()), wav.numel() / SAMPLE_RATE)
            for name, seconds in spent.items():
                stages[name] = stages.get(name, 0.0) + seconds
        result = SynthesisResult(torch.cat(pieces), SAMPLE_RATE, sentences, stages, tokens)
        meta = AIMetadata(model=self.model_name)
        result.metadata = meta.as_fields()
        if output is not None:
            start = time.perf_counter()
            write_audio_with_ai_metadata(output, result.wav, SAMPLE_RATE, meta)
            result.stage_seconds["write"] = time.perf_counter() - start
            result.path = Path(output)
        log.info("%s", result.report())
        return result

"""Streaming synthesis: audio chunks leave while the GPT is still generating.

Semantic tokens arrive in chunks (from a streaming GPT sampler, or cut from a finished sequence). Each chunk is
decoded by SoVITS together with ``context_tokens`` earlier tokens, so the convolutional/attention receptive field
sees what came before; the samples belonging to the context are dropped and the seam is cross-faded over
``crossfade_samples``. One semantic token is 2 spectrogram frames = 1280 samples at 32 kHz (speed 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from gpt_sovits_train.constants import SAMPLE_RATE, SAMPLES_PER_TOKEN
from gpt_sovits_train.inference.synthesizer import (
    PreparedReference,
    Reference,
    SamplingSettings,
    Synthesizer,
)

TokenStreamFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, SamplingSettings], Iterable[torch.Tensor]]


@dataclass
class AudioChunk:
    """A piece of output audio; ``latency`` is seconds since the request started when it was ready."""

    wav: torch.Tensor
    index: int
    sentence: int
    latency: float
    final: bool = False


def chunk_tokens(tokens: torch.Tensor, chunk_size: int) -> Iterator[torch.Tensor]:
    """Cut a finished token sequence into ``chunk_size`` pieces (fallback when the GPT cannot stream)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    flat = tokens.reshape(-1)
    for start in range(0, flat.numel(), chunk_size):
        yield flat[start : start + chunk_size]


def _crossfade(previous_tail: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    length = min(previous_tail.numel(), head.numel())
    if length == 0:
        return head
    ramp = torch.linspace(0.0, 1.0, length)
    mixed = previous_tail[-length:] * (1 - ramp) + head[:length] * ramp
    return torch.cat([mixed, head[length:]])


class StreamingSynthesizer:
    """Wraps a :class:`Synthesizer`; ``stream(...)`` yields :class:`AudioChunk` objects as they become ready."""

    def __init__(
        self,
        synthesizer: Synthesizer,
        token_stream: TokenStreamFn | None = None,
        chunk_tokens_count: int = 24,
        context_tokens: int = 12,
        crossfade_samples: int = 640,
    ) -> None:
        self.synth = synthesizer
        self.token_stream = token_stream
        self.chunk_size = chunk_tokens_count
        self.context = context_tokens
        self.crossfade = crossfade_samples

    def _tokens(self, phones, bert, prompt, settings) -> Iterable[torch.Tensor]:
        if self.token_stream is not None:
            return self.token_stream(phones, bert, prompt, settings)
        return chunk_tokens(self.synth.generate(phones, bert, prompt, settings), self.chunk_size)

    @torch.inference_mode()
    def stream(
        self, text: str, language: str, reference: Reference | PreparedReference, settings: SamplingSettings | None
    ) -> Iterator[AudioChunk]:
        settings = settings or SamplingSettings()
        start = time.perf_counter()
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        ref = self.synth.prepare_reference(reference) if isinstance(reference, Reference) else reference
        from gpt_sovits_train.text.frontend import split_sentences

        sentences = [s for s in split_sentences(text, settings.max_sentence_chars) if s.strip()]
        if not sentences:
            raise ValueError("the text to synthesize is empty")
        index = 0
        samples_per_token = int(SAMPLES_PER_TOKEN / settings.speed)
        for number, sentence in enumerate(sentences):
            phones, bert = self.synth._phones(sentence, language)
            all_phones = torch.tensor([ref.prompt_phones + phones], dtype=torch.long, device=self.synth.device)
            all_bert = torch.cat([ref.prompt_bert, bert], dim=1).unsqueeze(0).to(self.synth.device)
            prompt = ref.prompt_semantic.to(self.synth.device) if ref.prompt_semantic is not None else None
            text_ids = torch.tensor([phones], dtype=torch.long, device=self.synth.device)
            seen = torch.zeros(0, dtype=torch.long, device=self.synth.device)
            tail = torch.zeros(0)
            for new in self._tokens(all_phones, all_bert, prompt, settings):
                new = new.reshape(-1).to(self.synth.device)
                if new.numel() == 0:
                    continue
                context = seen[-self.context :] if self.context else seen[:0]
                codes = torch.cat([context, new]).view(1, 1, -1)
                wav = self.synth.decode_tokens(codes, text_ids, ref, settings)
                drop = min(context.numel() * samples_per_token, wav.numel())
                fresh = wav[max(0, drop - tail.numel()) :] if tail.numel() else wav[drop:]
                if tail.numel():
                    # ``fresh`` starts with the overlap region that re-renders the previous chunk's held-back tail.
                    fresh = _crossfade(tail, fresh)
                hold = min(self.crossfade, fresh.numel())
                out, tail = fresh[: fresh.numel() - hold], fresh[fresh.numel() - hold :]
                seen = torch.cat([seen, new])
                yield AudioChunk(out.clamp(-1, 1), index, number, time.perf_counter() - start)
                index += 1
            pause = torch.zeros(int(self.synth_sample_rate * settings.pause_seconds))
            final = number == len(sentences) - 1
            yield AudioChunk(torch.cat([tail, pause]).clamp(-1, 1), index, number, time.perf_counter() - start, final)
            index += 1

    @property
    def synth_sample_rate(self) -> int:
        return SAMPLE_RATE


def first_chunk_latency(chunks: Iterable[AudioChunk]) -> tuple[float, torch.Tensor]:
    """Consume a stream; return the first non-empty chunk's latency and the joined audio."""
    first = None
    pieces = []
    for chunk in chunks:
        if first is None and chunk.wav.numel():
            first = chunk.latency
        pieces.append(chunk.wav)
    return (first if first is not None else float("nan")), torch.cat(pieces) if pieces else torch.zeros(0)

"""The one decode loop and the one chunked-streaming helper, over any :class:`DecodeBackend`.

A backend only computes raw logits: :meth:`~DecodeBackend.prefill` runs phonemes + prompt and keeps the keys and
values, :meth:`~DecodeBackend.step` feeds one new token per row. The KV cache (``kv_cache.KVDecoder``), the exported
PyTorch graphs and ONNX Runtime sessions (``interchange/t2s_decode.py``) implement it; token choice and stopping
are :class:`~gpt_sovits_train.models.gpt.sampling.DecodeRules`, the same for all of them.

By v2's convention the last logit is EOS (``vocab_size - 1``), so the loop reads the vocabulary off the logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from gpt_sovits_train.models.gpt.sampling import DecodeRules, SamplingOptions


class DecodeBackend(Protocol):
    """What computes the logits of a decode; the rules and the loop live outside it."""

    def prefill(
        self,
        phoneme_ids: torch.Tensor,
        phoneme_lens: torch.Tensor,
        bert: torch.Tensor,
        prompt: torch.Tensor,
        prompt_lens: torch.Tensor,
        capacity: int,
    ) -> torch.Tensor:
        """Raw logits ``[B,V]`` of each row's first new token; keep room for ``capacity`` cached positions."""
        ...

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Raw logits ``[B,V]`` after one new token per row (``positions``: its index among semantic tokens)."""
        ...


@dataclass
class DecodeOutput:
    """``tokens[i, :lengths[i]]`` are row *i*'s new tokens (EOS never included); ``steps`` is the last loop index."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    finished_by_eos: torch.Tensor
    steps: int
    step_logits: list[torch.Tensor] | None = None

    def row(self, index: int) -> torch.Tensor:
        return self.tokens[index, : int(self.lengths[index])]


@torch.inference_mode()
def iterate(
    backend: DecodeBackend,
    phoneme_ids: torch.Tensor,
    phoneme_lens: torch.Tensor,
    bert_feature: torch.Tensor,
    prompt: torch.Tensor,
    prompt_lens: torch.Tensor,
    options: SamplingOptions,
    generator: torch.Generator | None = None,
    record_logits: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Yield ``(tokens [B], appended [B], raw logits or None)`` once per step (see :meth:`DecodeRules.advance`)."""
    capacity = phoneme_ids.shape[1] + prompt.shape[1] + options.max_new_tokens
    logits = backend.prefill(phoneme_ids, phoneme_lens, bert_feature, prompt, prompt_lens, capacity)
    vocab = logits.shape[-1]
    rules = DecodeRules(options, vocab - 1, vocab, prompt, prompt_lens, generator)
    while True:
        tokens, appended = rules.advance(logits)
        yield tokens, appended, (logits if record_logits else None)
        if rules.finished:
            return
        logits = backend.step(*rules.next_inputs(tokens))


def generate(
    backend: DecodeBackend,
    phoneme_ids: torch.Tensor,
    bert_feature: torch.Tensor,
    prompt: torch.Tensor | None = None,
    phoneme_lens: torch.Tensor | None = None,
    prompt_lens: torch.Tensor | None = None,
    options: SamplingOptions | None = None,
    generator: torch.Generator | None = None,
    record_logits: bool = False,
) -> DecodeOutput:
    """Decode every row to EOS or ``max_new_tokens``. Lengths default to full rows; ``prompt=None`` is ref-free."""
    phoneme_ids, bert_feature, prompt, phoneme_lens, prompt_lens = _normalize(
        phoneme_ids, bert_feature, prompt, phoneme_lens, prompt_lens
    )
    options = options or SamplingOptions()
    steps: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []
    raw: list[torch.Tensor] = []
    for tokens, appended, logits in iterate(
        backend, phoneme_ids, phoneme_lens, bert_feature, prompt, prompt_lens, options, generator, record_logits
    ):
        steps.append(tokens)
        kept.append(appended)
        if logits is not None:
            raw.append(logits.float().clone())
    lengths = torch.stack(kept, 1).sum(1)
    eos_hit = lengths < options.max_new_tokens
    return DecodeOutput(torch.stack(steps, 1), lengths, eos_hit, len(steps) - 1, raw if record_logits else None)


def stream(
    backend: DecodeBackend,
    phoneme_ids: torch.Tensor,
    bert_feature: torch.Tensor,
    prompt: torch.Tensor | None = None,
    options: SamplingOptions | None = None,
    chunk_size: int = 25,
    first_chunk_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Batch-1 streaming: yield new tokens in chunks (a smaller first chunk lowers time-to-first-audio)."""
    if phoneme_ids.shape[0] != 1:
        raise ValueError("stream() decodes one sentence; use generate() for batches")
    if chunk_size < 1 or (first_chunk_size is not None and first_chunk_size < 1):
        raise ValueError(f"chunk sizes must be >= 1, got {first_chunk_size} then {chunk_size}")
    phoneme_ids, bert_feature, prompt, phoneme_lens, prompt_lens = _normalize(phoneme_ids, bert_feature, prompt)
    pending: list[torch.Tensor] = []
    limit = first_chunk_size or chunk_size
    for tokens, appended, _ in iterate(
        backend, phoneme_ids, phoneme_lens, bert_feature, prompt, prompt_lens, options or SamplingOptions(), generator
    ):
        if bool(appended[0]):
            pending.append(tokens)
        if len(pending) >= limit:
            yield torch.cat(pending)
            pending, limit = [], chunk_size
    if pending:
        yield torch.cat(pending)


def _normalize(phoneme_ids, bert_feature, prompt, phoneme_lens=None, prompt_lens=None):
    """Fill in defaults (full lengths, empty prompt) and check shapes with messages that say what to pass."""
    if phoneme_ids.dim() != 2:
        raise ValueError(f"phoneme_ids must be [B, P], got {tuple(phoneme_ids.shape)}")
    b = phoneme_ids.shape[0]
    if prompt is None:
        prompt = phoneme_ids.new_zeros(b, 0)
    if prompt.dim() != 2 or prompt.shape[0] != b:
        raise ValueError(f"prompt must be [B, S] with B={b}, got {tuple(prompt.shape)}")
    device = phoneme_ids.device
    if phoneme_lens is None:
        phoneme_lens = torch.full((b,), phoneme_ids.shape[1], dtype=torch.long, device=device)
    if prompt_lens is None:
        prompt_lens = torch.full((b,), prompt.shape[1], dtype=torch.long, device=device)
    return phoneme_ids, bert_feature, prompt.long(), phoneme_lens.long(), prompt_lens.long()

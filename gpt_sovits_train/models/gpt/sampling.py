"""KV-cache decoding for :class:`Text2SemanticModel`: batched, streaming, greedy or sampled.

Per-token cost is kept to the layer math: the cache is preallocated once per call (``[B, H, T_max, D/H]`` per
layer, written in place), the attention mask is a slice of one boolean buffer (and is skipped at batch 1), and the
loop runs under ``torch.inference_mode``.

Batch layout: row *i* holds ``[its phonemes, right-padded to max(P) ; its prompt, right-padded to max(S)]`` and new
tokens are written at one shared column per step; padded columns are masked out as keys, and each row's semantic
positions continue from its own prompt length, so every row decodes as it would alone.

:class:`SamplingOptions` defaults are the corrected behaviour; ``SamplingOptions.v2_compatible()`` turns on the
reference's habits (EOS forbidden for the first 11 steps, repetition penalty also over the prompt, stop when the
argmax is EOS even if the sample is not), which the parity tests use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from gpt_sovits_train.models.gpt.model import Text2SemanticModel, joint_attention_mask, right_pad_mask


@dataclass(frozen=True)
class SamplingOptions:
    """How the next token is chosen. ``greedy=True`` takes the argmax of the processed logits (deterministic)."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    max_new_tokens: int = 1500
    greedy: bool = False
    eos_blocked_steps: int = 0  # v2: 11 (the EOS logit is dropped for the first steps)
    penalize_prompt: bool = False  # v2: True (the prompt's tokens are penalized as if generated)
    stop_on_argmax_eos: bool = False  # v2: True

    @classmethod
    def v2_compatible(cls, **overrides) -> SamplingOptions:
        """The reference ``infer_panel`` rules; its ``early_stop_num=n`` equals ``max_new_tokens=n + 1``."""
        return replace(cls(eos_blocked_steps=11, penalize_prompt=True, stop_on_argmax_eos=True), **overrides)


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


def process_logits(
    logits: torch.Tensor, history: torch.Tensor | None, options: SamplingOptions, block_eos: bool, eos: int
) -> torch.Tensor:
    """Apply EOS blocking, repetition penalty, top-p, temperature and top-k to ``logits`` ``[B,V]`` (a copy)."""
    logits = logits.float().clone()
    if block_eos:
        logits[:, eos] = float("-inf")
    if history is not None and history.shape[1] and options.repetition_penalty != 1.0:
        seen = logits.gather(1, history)
        penalized = torch.where(seen < 0, seen * options.repetition_penalty, seen / options.repetition_penalty)
        logits.scatter_(1, history, penalized)
    if options.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative > options.top_p
        drop[:, 0] = False
        logits.scatter_(1, order, ordered.masked_fill(drop, float("-inf")))
    logits = logits / max(options.temperature, 1e-5)
    if options.top_k and options.top_k < logits.shape[-1]:
        pivot = logits.topk(options.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < pivot, float("-inf"))
    return logits


def choose(logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row: argmax when greedy, else a categorical draw via ``argmax(p / Exp(1))``."""
    if options.greedy:
        return logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / noise).argmax(dim=-1)


class KVDecoder:
    """Incremental decoder over a :class:`Text2SemanticModel` (weights are shared, not copied)."""

    def __init__(self, model: Text2SemanticModel) -> None:
        self.model = model
        self.layers = list(model.h.layers)
        self.heads = model.cfg.num_heads

    def _prefill(self, phoneme_ids, phoneme_lens, bert, prompt, prompt_lens, capacity):
        model = self.model
        b, p = phoneme_ids.shape
        s = prompt.shape[1]
        text_padding = right_pad_mask(phoneme_lens, p)
        prompt_padding = right_pad_mask(prompt_lens, s)
        x = torch.cat([model.embed_text(phoneme_ids, bert), model.embed_semantic(prompt.clamp(max=model.eos))], 1)
        mask = joint_attention_mask(text_padding, prompt_padding)
        dim = x.shape[-1]
        head_dim = dim // self.heads
        self.keys = [x.new_zeros(b, self.heads, capacity, head_dim) for _ in self.layers]
        self.values = [x.new_zeros(b, self.heads, capacity, head_dim) for _ in self.layers]
        for layer, k_cache, v_cache in zip(self.layers, self.keys, self.values, strict=True):
            q, k, v = layer.self_attn.project(x)
            k_cache[:, :, : p + s] = k
            v_cache[:, :, : p + s] = v
            attended = layer.self_attn.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
            x = layer.feed_forward(layer.norm1(x + attended))
        self.valid = torch.zeros(b, 1, 1, capacity, dtype=torch.bool, device=x.device)
        self.valid[:, 0, 0, : p + s] = ~torch.cat([text_padding, prompt_padding], 1)
        self.needs_mask = bool((~self.valid[:, 0, 0, : p + s]).any())
        self.length = p + s
        last = torch.where(prompt_lens > 0, p + prompt_lens - 1, phoneme_lens - 1)
        return model.ar_predict_layer(x[torch.arange(b, device=x.device), last])

    def _step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        model = self.model
        t = self.length
        if t >= self.keys[0].shape[2]:
            raise RuntimeError("KV cache is full; raise max_new_tokens capacity")
        x = model.ar_audio_embedding(tokens.unsqueeze(1)) + model.ar_audio_position.alpha * (
            model.ar_audio_position.table[positions].unsqueeze(1)
        )
        self.valid[:, 0, 0, t] = True
        mask = self.valid[..., : t + 1] if self.needs_mask else None
        for layer, k_cache, v_cache in zip(self.layers, self.keys, self.values, strict=True):
            attention = layer.self_attn
            q, k, v = attention.project(x)
            k_cache[:, :, t : t + 1] = k
            v_cache[:, :, t : t + 1] = v
            out = F.scaled_dot_product_attention(q, k_cache[:, :, : t + 1], v_cache[:, :, : t + 1], attn_mask=mask)
            x = layer.feed_forward(layer.norm1(x + attention.merge(out)))
        self.length = t + 1
        return model.ar_predict_layer(x[:, 0])

    @torch.inference_mode()
    def iterate(
        self,
        phoneme_ids: torch.Tensor,
        phoneme_lens: torch.Tensor,
        bert_feature: torch.Tensor,
        prompt: torch.Tensor,
        prompt_lens: torch.Tensor,
        options: SamplingOptions,
        generator: torch.Generator | None = None,
        record_logits: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(tokens [B], alive [B] before this step, raw logits or None)`` once per step."""
        eos = self.model.eos
        b = phoneme_ids.shape[0]
        logits = self._prefill(
            phoneme_ids,
            phoneme_lens,
            bert_feature,
            prompt,
            prompt_lens,
            phoneme_ids.shape[1] + prompt.shape[1] + options.max_new_tokens,
        )
        alive = torch.ones(b, dtype=torch.bool, device=logits.device)
        generated = torch.zeros(b, dtype=torch.long, device=logits.device)
        history = prompt if options.penalize_prompt else prompt[:, :0]
        history = (
            history.masked_fill(right_pad_mask(prompt_lens, prompt.shape[1]), eos) if history.shape[1] else history
        )
        for step in range(options.max_new_tokens):
            processed = process_logits(logits, history, options, step < options.eos_blocked_steps, eos)
            tokens = choose(processed, options, generator)
            stop = tokens == eos
            if options.stop_on_argmax_eos:
                stop |= processed.argmax(-1) == eos if step < options.eos_blocked_steps else logits.argmax(-1) == eos
            appended = alive & ~stop
            yield (
                torch.where(appended, tokens, torch.full_like(tokens, eos)),
                appended,
                (logits if record_logits else None),
            )
            generated += appended.long()
            alive = appended & (generated < options.max_new_tokens)
            if not bool(alive.any()):
                return
            history = torch.cat([history, torch.where(alive, tokens, eos).unsqueeze(1)], 1)
            logits = self._step(torch.where(alive, tokens, 0), prompt_lens + generated - 1)

    def generate(
        self,
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
        for tokens, appended, logits in self.iterate(
            phoneme_ids, phoneme_lens, bert_feature, prompt, prompt_lens, options, generator, record_logits
        ):
            steps.append(tokens)
            kept.append(appended)
            if logits is not None:
                raw.append(logits.float().clone())
        appended = torch.stack(kept, 1)
        lengths = appended.sum(1)
        eos_hit = lengths < options.max_new_tokens
        return DecodeOutput(torch.stack(steps, 1), lengths, eos_hit, len(steps) - 1, raw if record_logits else None)

    def stream(
        self,
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
        phoneme_ids, bert_feature, prompt, phoneme_lens, prompt_lens = _normalize(phoneme_ids, bert_feature, prompt)
        pending: list[torch.Tensor] = []
        limit = first_chunk_size or chunk_size
        for tokens, appended, _ in self.iterate(
            phoneme_ids, phoneme_lens, bert_feature, prompt, prompt_lens, options or SamplingOptions(), generator
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
    if phoneme_lens is None:
        phoneme_lens = torch.full((b,), phoneme_ids.shape[1], dtype=torch.long)
    if prompt_lens is None:
        prompt_lens = torch.full((b,), prompt.shape[1], dtype=torch.long)
    return phoneme_ids, bert_feature, prompt.long(), phoneme_lens.long(), prompt_lens.long()

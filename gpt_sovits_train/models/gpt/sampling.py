"""KV-cache decoding for :class:`Text2SemanticModel`: batched, streaming, greedy or sampled — the one decoder.

Everything that decodes semantic tokens goes through this module: training-time validation, the synthesizer, the
benchmarks, and (through :class:`DecodeRules`) the host loop that drives exported ONNX graphs. One implementation
means one set of rules and one place to make it fast.

Per-token cost is kept to the layer math, because batch-1 decoding is bound by reading the weights once per token
and everything else is overhead on top of that bound:

* the cache is one preallocated ``[2, B, H, T_max, D/H]`` buffer per layer, left uninitialised (every column is
  written before it is read) and filled in place with a single copy per layer and step;
* the step multiplies ``[B, D]`` rows by the matrices held in oneDNN's packed layout (CPU) with no module calls
  and no ``[B, 1, D]`` reshapes, and attention for the single new query needs no mask unless some
  row is padded;
* the repetition penalty keeps a ``[B, V]`` "seen" mask updated with one scatter per step instead of re-reading a
  growing token history;
* the loop runs under ``torch.inference_mode``.

Batch layout: row *i* holds ``[its phonemes, right-padded to max(P) ; its prompt, right-padded to max(S)]`` and new
tokens are written at one shared column per step; padded columns are masked out as keys, and each row's semantic
positions continue from its own prompt length, so every row decodes as it would alone.

:class:`SamplingOptions` defaults are the corrected behaviour; ``SamplingOptions.v2_compatible()`` turns on the
reference's habits (EOS forbidden for the first 11 steps, repetition penalty also over the prompt, stop when the
argmax of the penalized logits is EOS even if the sample is not), which the parity tests and the synthesizer use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def penalize_logits(
    logits: torch.Tensor, seen: torch.Tensor | None, options: SamplingOptions, block_eos: bool, eos: int
) -> torch.Tensor:
    """EOS blocking and repetition penalty on ``logits`` ``[B,V]`` (float32, never in place).

    ``seen`` ``[B,V]`` (bool) marks the tokens to penalize: negative scores are multiplied by the penalty, positive
    ones divided, once per distinct token however often it occurred (as the reference's gather/scatter does).
    These are the logits v2 changes in place, so its argmax-EOS stop rule sees them (:meth:`DecodeRules.advance`).
    """
    logits = logits.float()
    if block_eos:
        logits = logits.index_fill(1, torch.tensor([eos], device=logits.device), float("-inf"))
    if seen is not None and options.repetition_penalty != 1.0:
        penalty = options.repetition_penalty
        logits = torch.where(seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)
    return logits


def filter_logits(logits: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Top-p, temperature and top-k on float32 ``logits`` ``[B,V]`` (v2's order); never in place."""
    if options.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        drop = ordered.softmax(dim=-1).cumsum(dim=-1) > options.top_p
        drop[:, 0] = False
        logits = logits.scatter(1, order, ordered.masked_fill(drop, float("-inf")))
    if options.temperature != 1.0:
        logits = logits / max(options.temperature, 1e-5)
    if options.top_k and options.top_k < logits.shape[-1]:
        pivot = logits.topk(options.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < pivot, float("-inf"))
    return logits


def process_logits(
    logits: torch.Tensor, seen: torch.Tensor | None, options: SamplingOptions, block_eos: bool, eos: int
) -> torch.Tensor:
    """:func:`penalize_logits` then :func:`filter_logits`: the distribution a token is drawn from."""
    return filter_logits(penalize_logits(logits, seen, options, block_eos, eos), options)


def choose(logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row: argmax when greedy, else a categorical draw via ``argmax(p / Exp(1))``."""
    if options.greedy:
        return logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / noise).argmax(dim=-1)


class DecodeRules:
    """Token choice and stopping for one decode, independent of how the logits are computed.

    :class:`KVDecoder` and the exported-graph host loop (``interchange/t2s_decode.py``) both feed raw logits to
    :meth:`advance`, so a PyTorch decode and an ONNX Runtime decode follow the same rules token for token.
    """

    def __init__(
        self,
        options: SamplingOptions,
        eos: int,
        vocab_size: int,
        prompt: torch.Tensor,
        prompt_lens: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> None:
        self.options, self.eos, self.generator = options, eos, generator
        b = prompt.shape[0]
        self.prompt_lens = prompt_lens
        self.alive = torch.ones(b, dtype=torch.bool, device=prompt.device)
        self.generated = torch.zeros(b, dtype=torch.long, device=prompt.device)
        self.step = -1
        self.finished = False
        # One spare column takes the prompt's padding, so padding never penalizes a real token.
        seen = torch.zeros(b, vocab_size + 1, dtype=torch.bool, device=prompt.device)
        if options.penalize_prompt and prompt.shape[1]:
            seen.scatter_(1, prompt.masked_fill(right_pad_mask(prompt_lens, prompt.shape[1]), vocab_size), True)
        self.seen = seen[:, :vocab_size]

    def advance(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose this step's tokens from raw ``logits`` ``[B,V]``.

        Returns ``(tokens, appended)``: ``appended[i]`` says row *i* produced a new token this step (it was alive and
        did not stop), and ``tokens[i]`` is that token, or EOS where nothing was appended. Afterwards
        :attr:`finished` says whether every row has stopped.
        """
        options, eos = self.options, self.eos
        self.step += 1
        blocked = self.step < options.eos_blocked_steps
        penalized = penalize_logits(logits, self.seen, options, blocked, eos)
        tokens = choose(filter_logits(penalized, options), options, self.generator)
        stop = tokens == eos
        if options.stop_on_argmax_eos:
            # v2 penalizes its logits in place before testing their argmax, so the penalty counts here too.
            stop |= penalized.argmax(-1) == eos
        appended = self.alive & ~stop
        self.generated += appended
        self.alive = appended & (self.generated < options.max_new_tokens)
        tokens = torch.where(appended, tokens, eos)
        self.finished = not bool(self.alive.any())
        if not self.finished:
            self.seen.scatter_(1, tokens.unsqueeze(1), True)
        return tokens, appended

    def next_inputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the next step consumes: ``tokens`` with stopped rows fed a harmless 0, and each row's semantic
        position of its newest token (positions restart at 0 for semantic tokens and count the prompt)."""
        return torch.where(self.alive, tokens, 0), self.prompt_lens + self.generated - 1


@dataclass(frozen=True)
class _LayerWeights:
    """One layer's tensors, fetched once per decode so the per-token loop does no module attribute lookups."""

    in_weight: torch.Tensor
    in_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    ffn_in_weight: torch.Tensor
    ffn_in_bias: torch.Tensor
    ffn_out_weight: torch.Tensor
    ffn_out_bias: torch.Tensor
    norm1_weight: torch.Tensor
    norm1_bias: torch.Tensor
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    eps: float

    def map_matrices(
        self, weight_fn: Callable[[torch.Tensor], torch.Tensor], bias_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> _LayerWeights:
        """A copy with ``weight_fn`` applied to the linear weights and ``bias_fn`` to their biases (layer norms
        stay: they run on the residual stream)."""
        weights = ("in_weight", "out_weight", "ffn_in_weight", "ffn_out_weight")
        biases = ("in_bias", "out_bias", "ffn_in_bias", "ffn_out_bias")
        changed = {name: weight_fn(getattr(self, name)) for name in weights}
        changed.update({name: bias_fn(getattr(self, name)) for name in biases})
        return replace(self, **changed)

    @classmethod
    def of(cls, layer: torch.nn.Module) -> _LayerWeights:
        attention = layer.self_attn
        return cls(
            attention.in_proj_weight,
            attention.in_proj_bias,
            attention.out_proj.weight,
            attention.out_proj.bias,
            layer.linear1.weight,
            layer.linear1.bias,
            layer.linear2.weight,
            layer.linear2.bias,
            layer.norm1.weight,
            layer.norm1.bias,
            layer.norm2.weight,
            layer.norm2.bias,
            layer.norm1.eps,
        )


def _version_of(tensor: torch.Tensor) -> tuple[int, int]:
    """Storage address and in-place-write counter; tensors made under ``inference_mode`` count no versions."""
    try:
        return tensor.data_ptr(), tensor._version
    except RuntimeError:
        return tensor.data_ptr(), -1


def _onednn_pack(weight: torch.Tensor, batch: int) -> torch.Tensor | None:
    """oneDNN's blocked layout of a ``[out, in]`` linear weight for ``batch`` rows, or None where oneDNN can't
    take it (not a CPU tensor, no oneDNN in this build, or a dtype this CPU has no kernel for, e.g. bf16 without
    AVX-512)."""
    if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, batch)
    except (RuntimeError, AttributeError):
        return None


def _onednn_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _step_linear(dtype: torch.dtype | None, packed: bool) -> Callable[..., torch.Tensor]:
    """The step's ``linear(x, weight, bias)``: plain or oneDNN-packed, with the product in ``dtype`` (None: in
    ``x``'s dtype) while ``x`` and the result keep theirs."""
    matmul = _onednn_linear if packed else F.linear
    if dtype is None:
        return matmul

    def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return matmul(x.to(dtype), weight, bias).to(x.dtype)

    return linear


@dataclass(frozen=True)
class _StepMatrices:
    """What the per-token step multiplies by, and how; ``stamp`` says which parameter versions it was made from."""

    stamp: tuple
    layers: list[_LayerWeights]
    predict_weight: torch.Tensor
    linear: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    packed: bool


class KVDecoder:
    """Incremental decoder over a :class:`Text2SemanticModel` (the prefill reads the model's own weights).

    The per-token step is a chain of ``[B, D] x [D, N]`` products, bound by reading the matrices, so how the step
    holds its matrices is where decode speed is won:

    * ``prepack=True`` (default; CPU tensors in a torch build with oneDNN) gives the step a copy of every matrix in
      oneDNN's blocked layout for this batch size. Same float32 arithmetic in another summation order (logits
      agree to ~1e-6), but the kernel streams the weights instead of striding through them: on a 2-core AVX2 CPU
      the v2-size matrix chain takes 22-25 ms per token instead of 31-33 at batch 1 and 30-35 ms instead of
      58-66 at batch 8. It costs one more copy of the step matrices (308 MB at v2 size) while the decoder lives;
      ``prepack=False`` reads the parameters in place.
    * ``step_weights=torch.bfloat16`` makes that copy bf16: half the bytes per token, while the prefill, the
      residual stream, layer norms, attention and the KV cache keep the model's dtype (a bf16 prefill is a real
      matrix product, slow on CPUs without bf16 units). oneDNN packs bf16 only on CPUs with AVX-512 or
      AVX-NE-CONVERT; elsewhere the bf16 copy stays a plain tensor.
    * converting the model (``KVDecoder(model.to(torch.bfloat16))``) runs everything, cache included, in that
      dtype: the GPU choice. Sampling always sees float32 logits.

    Copies are remade whenever a parameter changed in place (an optimizer step) or the batch size changed, so a
    decoder may outlive training steps.
    """

    def __init__(
        self, model: Text2SemanticModel, step_weights: torch.dtype | None = None, prepack: bool = True
    ) -> None:
        self.model = model
        self.heads = model.cfg.num_heads
        self.step_dtype = step_weights if step_weights not in (None, model.ar_predict_layer.weight.dtype) else None
        self.prepack = prepack
        self._matrices: _StepMatrices | None = None

    def _step_matrices(self, batch: int) -> _StepMatrices:
        """The matrices the step reads: the parameters themselves, or copies in ``step_dtype`` and/or oneDNN's
        packed layout, remade when a parameter changed in place or the batch size changed."""
        model = self.model
        layers = [_LayerWeights.of(layer) for layer in model.h.layers]
        predict = model.ar_predict_layer.weight
        if self.step_dtype is None and not self.prepack:
            return _StepMatrices((), layers, predict, F.linear, packed=False)
        stamp = (batch, *(_version_of(p) for p in model.parameters()))
        if self._matrices is not None and self._matrices.stamp == stamp:
            return self._matrices
        dtype = self.step_dtype or predict.dtype
        packed = self.prepack and _onednn_pack(predict.new_zeros(8, 8, dtype=dtype), batch) is not None
        # Drop the previous copy first: at v2 size it is another 300 MB.
        self._matrices = None

        def weight_copy(weight: torch.Tensor) -> torch.Tensor:
            weight = weight.detach().to(dtype)
            return _onednn_pack(weight, batch) if packed else weight

        def bias_copy(bias: torch.Tensor) -> torch.Tensor:
            return bias.detach().to(dtype)

        self._matrices = _StepMatrices(
            stamp,
            [layer.map_matrices(weight_copy, bias_copy) for layer in layers],
            weight_copy(predict),
            _step_linear(self.step_dtype, packed),
            packed,
        )
        return self._matrices

    def prefill(
        self,
        phoneme_ids: torch.Tensor,
        phoneme_lens: torch.Tensor,
        bert: torch.Tensor,
        prompt: torch.Tensor,
        prompt_lens: torch.Tensor,
        capacity: int,
    ) -> torch.Tensor:
        """Run phonemes + prompt through the stack, keep their keys/values in a fresh cache of ``capacity``
        columns, and return the raw logits ``[B,V]`` of each row's first new token."""
        model = self.model
        b, p = phoneme_ids.shape
        matrices = self._step_matrices(b)
        self.weights, self.predict_weight, self._linear = matrices.layers, matrices.predict_weight, matrices.linear
        s = prompt.shape[1]
        text_padding = right_pad_mask(phoneme_lens, p)
        prompt_padding = right_pad_mask(prompt_lens, s)
        x = torch.cat([model.embed_text(phoneme_ids, bert), model.embed_semantic(prompt.clamp(max=model.eos))], 1)
        mask = joint_attention_mask(text_padding, prompt_padding)
        head_dim = x.shape[-1] // self.heads
        # Uninitialised on purpose: columns < length are always written before any step reads them.
        self.caches = [x.new_empty(2, b, self.heads, capacity, head_dim) for _ in model.h.layers]
        for layer, cache in zip(model.h.layers, self.caches, strict=True):
            q, k, v = layer.self_attn.project(x)
            cache[0, :, :, : p + s] = k
            cache[1, :, :, : p + s] = v
            attended = layer.self_attn.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
            x = layer.feed_forward(layer.norm1(x + attended))
        self.valid = torch.zeros(b, 1, 1, capacity, dtype=torch.bool, device=x.device)
        self.valid[:, 0, 0, : p + s] = ~torch.cat([text_padding, prompt_padding], 1)
        self.needs_mask = bool((~self.valid[:, 0, 0, : p + s]).any())
        self.length = p + s
        last = torch.where(prompt_lens > 0, p + prompt_lens - 1, phoneme_lens - 1)
        return model.ar_predict_layer(x[torch.arange(b, device=x.device), last])

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One new token per row (``tokens``/``positions`` ``[B]``) through every layer → logits ``[B,V]``."""
        model = self.model
        t = self.length
        if t >= self.caches[0].shape[3]:
            raise RuntimeError("KV cache is full; raise max_new_tokens capacity")
        position = model.ar_audio_position
        x = F.embedding(tokens, model.ar_audio_embedding.word_embeddings.weight) + position.alpha * position.table[
            positions
        ].to(position.alpha.dtype)
        b, dim = x.shape
        heads = self.heads
        if self.needs_mask:
            self.valid[:, 0, 0, t] = True
            mask = self.valid[..., : t + 1]
        else:
            mask = None
        linear = self._linear
        for w, cache in zip(self.weights, self.caches, strict=True):
            qkv = linear(x, w.in_weight, w.in_bias).view(b, 3, heads, -1)
            cache[:, :, :, t] = qkv[:, 1:].transpose(0, 1)
            attended = F.scaled_dot_product_attention(
                qkv[:, 0].unsqueeze(2), cache[0, :, :, : t + 1], cache[1, :, :, : t + 1], attn_mask=mask
            )
            x = F.layer_norm(
                x + linear(attended.reshape(b, dim), w.out_weight, w.out_bias),
                (dim,),
                w.norm1_weight,
                w.norm1_bias,
                w.eps,
            )
            hidden = linear(x, w.ffn_in_weight, w.ffn_in_bias).relu_()
            x = F.layer_norm(
                x + linear(hidden, w.ffn_out_weight, w.ffn_out_bias), (dim,), w.norm2_weight, w.norm2_bias, w.eps
            )
        self.length = t + 1
        return linear(x, self.predict_weight, None)

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
        """Yield ``(tokens [B], appended [B], raw logits or None)`` once per step (see :meth:`DecodeRules.advance`)."""
        logits = self.prefill(
            phoneme_ids,
            phoneme_lens,
            bert_feature,
            prompt,
            prompt_lens,
            phoneme_ids.shape[1] + prompt.shape[1] + options.max_new_tokens,
        )
        cfg = self.model.cfg
        rules = DecodeRules(options, cfg.eos, cfg.vocab_size, prompt, prompt_lens, generator)
        while True:
            tokens, appended = rules.advance(logits)
            yield tokens, appended, (logits if record_logits else None)
            if rules.finished:
                return
            logits = self.step(*rules.next_inputs(tokens))

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
        lengths = torch.stack(kept, 1).sum(1)
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
        if chunk_size < 1 or (first_chunk_size is not None and first_chunk_size < 1):
            raise ValueError(f"chunk sizes must be >= 1, got {first_chunk_size} then {chunk_size}")
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
    device = phoneme_ids.device
    if phoneme_lens is None:
        phoneme_lens = torch.full((b,), phoneme_ids.shape[1], dtype=torch.long, device=device)
    if prompt_lens is None:
        prompt_lens = torch.full((b,), prompt.shape[1], dtype=torch.long, device=device)
    return phoneme_ids, bert_feature, prompt.long(), phoneme_lens.long(), prompt_lens.long()

"""KV-cache decoding for :class:`Text2SemanticModel`: the :class:`~gpt_sovits_train.models.gpt.decoding.DecodeBackend`
that training-time validation, the synthesizer and the benchmarks decode with (batched, streaming, greedy or sampled).

Per-token cost is kept to the layer math, because batch-1 decoding is bound by reading the weights once per token
and everything else is overhead on top of that bound:

* the cache is one preallocated ``[2, B, H, T_max, D/H]`` buffer per layer, left uninitialised (every column is
  written before it is read) and filled in place with a single copy per layer and step;
* the step runs :func:`~gpt_sovits_train.models.gpt.model.decoder_layer` on ``[B, D]`` rows over the matrices a
  :data:`StepMatrixProvider` hands it (the parameters in place by default; packed or bf16 copies from
  ``gpt_sovits_train.runtime.cpu_packing``), and attention for the single new query needs no mask unless some row
  is padded;
* the repetition penalty keeps a ``[B, V]`` "seen" mask updated with one scatter per step
  (:class:`~gpt_sovits_train.models.gpt.sampling.DecodeRules`);
* the loop runs under ``torch.inference_mode``.

Batch layout: row *i* holds ``[its phonemes, right-padded to max(P) ; its prompt, right-padded to max(S)]`` and new
tokens are written at one shared column per step; padded columns are masked out as keys, and each row's semantic
positions continue from its own prompt length, so every row decodes as it would alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from gpt_sovits_train.models.gpt import decoding
from gpt_sovits_train.models.gpt.model import (
    LayerWeights,
    Linear,
    Text2SemanticModel,
    decoder_layer,
    joint_attention_mask,
    right_pad_mask,
)


@dataclass(frozen=True)
class StepMatrices:
    """What the per-token step multiplies by (one :class:`LayerWeights` per layer and the output projection), and
    the ``linear(x, weight, bias)`` that knows their layout."""

    layers: list[LayerWeights]
    predict_weight: torch.Tensor
    linear: Linear = F.linear


#: ``provider(model, batch) -> StepMatrices``: how the step holds its matrices; asked once per decode (prefill).
StepMatrixProvider = Callable[[Text2SemanticModel, int], StepMatrices]


def parameters_in_place(model: Text2SemanticModel, batch: int) -> StepMatrices:
    """The default provider: the step reads the model's own parameters."""
    return StepMatrices([layer.weights() for layer in model.h.layers], model.ar_predict_layer.weight)


class KVDecoder:
    """Incremental decoder over a :class:`Text2SemanticModel` (the prefill reads the model's own weights).

    The per-token step is a chain of ``[B, D] x [D, N]`` products, bound by reading the matrices, so how the step
    holds its matrices is where decode speed is won; ``matrices`` chooses (``runtime.cpu_packing.StepWeights``
    gives oneDNN-packed and/or bf16 copies). Converting the model (``KVDecoder(model.to(torch.bfloat16))``) runs
    everything, cache included, in that dtype: the GPU choice. Sampling always sees float32 logits.
    """

    def __init__(self, model: Text2SemanticModel, matrices: StepMatrixProvider = parameters_in_place) -> None:
        self.model = model
        self.heads = model.cfg.num_heads
        self.matrices = matrices

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
        step_matrices = self.matrices(model, b)
        self.weights, self.predict_weight, self._linear = (
            step_matrices.layers,
            step_matrices.predict_weight,
            step_matrices.linear,
        )
        s = prompt.shape[1]
        text_padding = right_pad_mask(phoneme_lens, p)
        prompt_padding = right_pad_mask(prompt_lens, s)
        x = torch.cat([model.embed_text(phoneme_ids, bert), model.embed_semantic(prompt.clamp(max=model.eos))], 1)
        head_dim = x.shape[-1] // self.heads
        # Uninitialised on purpose: columns < length are always written before any step reads them.
        self.caches = [x.new_empty(2, b, self.heads, capacity, head_dim) for _ in model.h.layers]

        def keep(index: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            self.caches[index][0, :, :, : p + s] = k
            self.caches[index][1, :, :, : p + s] = v
            return k, v

        x = model.h(x, joint_attention_mask(text_padding, prompt_padding), keep)
        self.valid = torch.zeros(b, 1, 1, capacity, dtype=torch.bool, device=x.device)
        self.valid[:, 0, 0, : p + s] = ~torch.cat([text_padding, prompt_padding], 1)
        self.needs_mask = bool((~self.valid[:, 0, 0, : p + s]).any())
        self.length = p + s
        last = torch.where(prompt_lens > 0, p + prompt_lens - 1, phoneme_lens - 1)
        return model.ar_predict_layer(x[torch.arange(b, device=x.device), last])

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One new token per row (``tokens``/``positions`` ``[B]``) through every layer → logits ``[B,V]``."""
        t = self.length
        if t >= self.caches[0].shape[3]:
            raise RuntimeError("KV cache is full; raise max_new_tokens capacity")
        x = self.model.embed_step(tokens, positions)
        b = x.shape[0]
        heads = self.heads
        if self.needs_mask:
            self.valid[:, 0, 0, t] = True
            mask = self.valid[..., : t + 1]
        else:
            mask = None

        def attend(cache: torch.Tensor, qkv: torch.Tensor) -> torch.Tensor:
            qkv = qkv.view(b, 3, heads, -1)
            cache[:, :, :, t] = qkv[:, 1:].transpose(0, 1)
            out = F.scaled_dot_product_attention(
                qkv[:, 0].unsqueeze(2), cache[0, :, :, : t + 1], cache[1, :, :, : t + 1], attn_mask=mask
            )
            return out.reshape(b, -1)

        linear = self._linear
        for w, cache in zip(self.weights, self.caches, strict=True):
            x = decoder_layer(x, w, partial(attend, cache), linear)
        self.length = t + 1
        return linear(x, self.predict_weight, None)

    def generate(self, *args, **kwargs) -> decoding.DecodeOutput:
        """:func:`gpt_sovits_train.models.gpt.decoding.generate` on this cache."""
        return decoding.generate(self, *args, **kwargs)

    def stream(self, *args, **kwargs) -> Iterator[torch.Tensor]:
        """:func:`gpt_sovits_train.models.gpt.decoding.stream` on this cache."""
        return decoding.stream(self, *args, **kwargs)

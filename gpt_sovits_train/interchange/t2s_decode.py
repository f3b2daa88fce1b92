"""Host-side autoregressive decoding over exported GPT graphs (PyTorch export modules or ONNX Runtime sessions).

The exported graphs only compute logits and caches; this module applies the v2 decoding rules on the host:

* the EOS logit is dropped for the first 11 steps;
* repetition penalty over every earlier token, prompt included (negative scores ×p, positive ÷p);
* top-p, then temperature, then top-k; the sample is ``argmax(probs / Exponential(1))``;
* stop when the generated length exceeds ``early_stop_num`` or when the argmax or the sample is EOS
  (EOS is never appended). ``idx`` is the number of steps before the stopping one; the v2 UI keeps ``y[-idx:]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gpt_sovits_train.interchange.onnx import T2SPrefill, T2SStep
from gpt_sovits_train.models.gpt.sampling import SamplingOptions, choose, process_logits

EOS = 1024
EOS_BLOCKED_STEPS = 11
MAX_STEPS = 1500

PrefillFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
StepFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]


def sample_next(
    logits: torch.Tensor, previous: torch.Tensor, top_k: int, top_p: float, temperature: float, penalty: float
) -> torch.Tensor:
    """One v2 sampling decision for ``logits`` ``[V]`` given earlier tokens ``previous`` ``[L]``, through the same
    logits processing and draw as :class:`~gpt_sovits_train.models.gpt.sampling.KVDecoder` (EOS blocking is done
    by the caller, which slices the EOS column off as v2 does)."""
    options = SamplingOptions(top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=penalty)
    history = previous.long().unsqueeze(0) if previous.numel() else None
    processed = process_logits(logits.unsqueeze(0), history, options, block_eos=False, eos=EOS)
    return choose(processed, options)[0]


@dataclass
class DecodeResult:
    new_tokens: torch.Tensor  # [N] every appended token
    idx: int  # steps before the stopping one

    def kept(self) -> torch.Tensor:
        """What the v2 UI feeds to SoVITS: the last ``idx`` tokens."""
        return self.new_tokens[self.new_tokens.numel() - self.idx :] if self.idx else self.new_tokens[:0]


def iter_decode(
    prefill: PrefillFn,
    step: StepFn,
    phoneme_ids: torch.Tensor,
    bert: torch.Tensor,
    prompt: torch.Tensor | None,
    top_k: int = 15,
    top_p: float = 1.0,
    temperature: float = 1.0,
    repetition_penalty: float = 1.35,
    early_stop_num: int = -1,
) -> Iterator[int]:
    """Yield each new token as soon as it is sampled (the KV-cache loop with the v2 rules).

    The generator's return value (``StopIteration.value``) is ``idx``, the number of steps before the stopping one.
    ``prompt`` ``None`` means reference-free decoding.
    """
    prompt = prompt if prompt is not None else torch.zeros(1, 0, dtype=torch.long)
    history = prompt[0].clone()
    generated = 0
    logits, keys, values = prefill(phoneme_ids, bert, prompt)
    idx = 0
    for idx in range(MAX_STEPS):
        row = logits[0]
        if idx < EOS_BLOCKED_STEPS:
            row = row[:EOS]
        token = sample_next(row, history, top_k, top_p, temperature, repetition_penalty)
        stop = int(torch.argmax(row)) == EOS or int(token) == EOS
        if not stop:
            generated += 1
            history = torch.cat([history, token.view(1)])
            yield int(token)
        if early_stop_num != -1 and generated > early_stop_num:
            stop = True
        if stop:
            break
        position = torch.tensor([prompt.shape[1] + generated - 1])
        logits, keys, values = step(token.view(1, 1), position, keys, values)
    return idx


def decode(prefill: PrefillFn, step: StepFn, phoneme_ids, bert, prompt, **options) -> DecodeResult:
    """Run :func:`iter_decode` to the end; returns every new token and ``idx``."""
    tokens: list[int] = []
    iterator = iter_decode(prefill, step, phoneme_ids, bert, prompt, **options)
    while True:
        try:
            tokens.append(next(iterator))
        except StopIteration as finished:
            return DecodeResult(torch.tensor(tokens, dtype=torch.long), int(finished.value))


def stream_chunks(
    generator: CachedT2S | TorchGraphGenerator, phoneme_ids, bert, prompt, chunk_sizes: tuple[int, int], **options
) -> Iterator[torch.Tensor]:
    """Yield token chunks while decoding: a small first chunk for low latency, then ``chunk_sizes[1]`` each."""
    first, rest = chunk_sizes
    pending: list[int] = []
    limit = first
    for token in iter_decode(generator.prefill, generator.step, phoneme_ids, bert, prompt, **options):
        pending.append(token)
        if len(pending) >= limit:
            yield torch.tensor(pending, dtype=torch.long)
            pending, limit = [], rest
    if pending:
        yield torch.tensor(pending, dtype=torch.long)


class TorchGraphGenerator:
    """Decode with the PyTorch export modules built from v2 GPT weights (no dependency on the training code)."""

    def __init__(self, weights, heads: int) -> None:
        self.prefill = T2SPrefill(weights, heads).eval()
        self.step = T2SStep(weights, heads).eval()

    @torch.inference_mode()
    def __call__(self, phoneme_ids, bert, prompt, **options) -> DecodeResult:
        return decode(self.prefill, self.step, phoneme_ids, bert, prompt, **options)


class OnnxGenerator:
    """Decode with ``t2s_prefill.onnx`` / ``t2s_step.onnx`` in ONNX Runtime."""

    def __init__(self, folder: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self.prefill_session = ort.InferenceSession(
            str(Path(folder) / "t2s_prefill.onnx"), options, providers=providers
        )
        self.step_session = ort.InferenceSession(str(Path(folder) / "t2s_step.onnx"), options, providers=providers)

    def _prefill(self, phoneme_ids, bert, prompt):
        feed = {"phoneme_ids": phoneme_ids.numpy(), "bert": bert.float().numpy(), "prompt": prompt.numpy()}
        return tuple(torch.from_numpy(np.asarray(o)) for o in self.prefill_session.run(None, feed))

    def _step(self, token, position, keys, values):
        feed = {
            "token": token.numpy(),
            "position": position.numpy(),
            "k_cache_in": keys.numpy(),
            "v_cache_in": values.numpy(),
        }
        return tuple(torch.from_numpy(np.asarray(o)) for o in self.step_session.run(None, feed))

    def __call__(self, phoneme_ids, bert, prompt, **options) -> DecodeResult:
        return decode(self._prefill, self._step, phoneme_ids, bert, prompt, **options)


class CachedT2S:
    """Fast PyTorch decoding for the synthesizer: preallocated K/V caches written in place, fused attention.

    The ONNX graphs must pass caches as values (they grow by concatenation); in eager PyTorch that copy of every
    cache at every step dominates batch-1 decoding, so this path keeps one buffer per layer instead.
    """

    def __init__(self, weights, heads: int, max_tokens: int = 2048, dtype: torch.dtype = torch.float32) -> None:
        # bfloat16 halves the bytes read per token (batch-1 decoding is memory-bound); float32 for exact parity.
        self.graph = T2SPrefill(weights, heads).eval().to(dtype)
        self.dtype = dtype
        self.heads = heads
        self.dim = self.graph.text_embedding.shape[1]
        self.max_tokens = max_tokens

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(t.shape[0], t.shape[1], self.heads, self.dim // self.heads).transpose(1, 2)

    @torch.inference_mode()
    def prefill(self, phoneme_ids: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor):
        logits, keys, values = self.graph(phoneme_ids, bert.to(self.dtype), prompt)
        layers, _, length, _ = keys.shape
        head_dim = self.dim // self.heads
        self.k = torch.zeros(layers, 1, self.heads, self.max_tokens, head_dim, dtype=self.dtype)
        self.v = torch.zeros_like(self.k)
        self.k[:, :, :, :length] = keys.view(layers, 1, length, self.heads, head_dim).transpose(2, 3)
        self.v[:, :, :, :length] = values.view(layers, 1, length, self.heads, head_dim).transpose(2, 3)
        self.length = length
        return logits.float(), None, None

    @torch.inference_mode()
    def step(self, token: torch.Tensor, position: torch.Tensor, _keys=None, _values=None):
        g = self.graph
        if self.length >= self.max_tokens:
            raise RuntimeError(f"decode exceeded {self.max_tokens} positions; raise max_tokens")
        h = torch.nn.functional.embedding(token, g.audio_embedding) + g.audio_alpha * g.positions[position].unsqueeze(0)
        t = self.length
        for index, layer in enumerate(g.layers):
            q, k, v = layer.qkv(h)
            self.k[index, :, :, t] = k.view(1, self.heads, -1)
            self.v[index, :, :, t] = v.view(1, self.heads, -1)
            out = torch.nn.functional.scaled_dot_product_attention(
                self._split(q), self.k[index, :, :, : t + 1], self.v[index, :, :, : t + 1]
            )
            attended = torch.nn.functional.linear(
                out.transpose(1, 2).reshape(1, 1, self.dim),
                layer.self_attn_out_proj_weight,
                layer.self_attn_out_proj_bias,
            )
            h = layer.finish(h, attended)
        self.length = t + 1
        return torch.nn.functional.linear(h[:, -1], g.predict).float(), None, None

    def __call__(self, phoneme_ids, bert, prompt, **options) -> DecodeResult:
        return decode(self.prefill, self.step, phoneme_ids, bert, prompt, **options)

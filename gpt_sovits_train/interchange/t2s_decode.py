"""Decoding with the v2 ``infer_panel`` keyword contract, over our KV decoder or over exported GPT graphs.

There is one decoding implementation, :class:`gpt_sovits_train.models.gpt.sampling.KVDecoder`, and one set of
rules, :class:`~gpt_sovits_train.models.gpt.sampling.DecodeRules`. This module only adapts them:

* :class:`CachedT2S` is the KV decoder built straight from v2-keyed weights (official ``.ckpt``, ours, or
  safetensors), called with v2's keywords;
* :func:`iter_decode` is the thin host loop for graphs that only compute logits and caches — the PyTorch export
  modules (:class:`TorchGraphGenerator`) and ONNX Runtime sessions (:class:`OnnxGenerator`); it hands every
  step's logits to the same ``DecodeRules``.

The v2 rules (``SamplingOptions.v2_compatible``): EOS forbidden for the first 11 steps; repetition penalty over
every earlier token, prompt included; top-p, then temperature, then top-k, then ``argmax(probs / Exponential(1))``;
stop when the argmax of the penalized logits or the sample is EOS (EOS is never appended) or after
``early_stop_num + 1`` new tokens.
``idx`` is the index of the stopping step, which the v2 UI uses to keep ``y[-idx:]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gpt_sovits_train.interchange.onnx import T2SPrefill, T2SStep
from gpt_sovits_train.models.gpt.model import model_from_weights
from gpt_sovits_train.models.gpt.sampling import DecodeRules, KVDecoder, SamplingOptions

MAX_STEPS = 1500  # v2's loop bound when early_stop_num is -1

PrefillFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
StepFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]


def v2_options(
    top_k: int = 15,
    top_p: float = 1.0,
    temperature: float = 1.0,
    repetition_penalty: float = 1.35,
    early_stop_num: int = -1,
) -> SamplingOptions:
    """:class:`SamplingOptions` for v2's ``infer_panel`` keywords (``early_stop_num=n`` allows ``n + 1`` tokens)."""
    return SamplingOptions.v2_compatible(
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
        max_new_tokens=early_stop_num + 1 if early_stop_num != -1 else MAX_STEPS,
    )


@dataclass
class DecodeResult:
    new_tokens: torch.Tensor  # [N] every appended token
    idx: int  # index of the stopping step

    def kept(self) -> torch.Tensor:
        """What the v2 UI feeds to SoVITS: the last ``idx`` tokens."""
        return self.new_tokens[self.new_tokens.numel() - self.idx :] if self.idx else self.new_tokens[:0]


def iter_decode(
    prefill: PrefillFn,
    step: StepFn,
    phoneme_ids: torch.Tensor,
    bert: torch.Tensor,
    prompt: torch.Tensor | None,
    options: SamplingOptions,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """Yield each new token as soon as it is chosen, driving graph callables that pass caches by value.

    The generator's return value (``StopIteration.value``) is ``idx``. ``prompt`` ``None`` is reference-free.
    """
    prompt = prompt if prompt is not None else torch.zeros(1, 0, dtype=torch.long)
    logits, keys, values = prefill(phoneme_ids, bert, prompt)
    vocab = logits.shape[-1]
    rules = DecodeRules(options, vocab - 1, vocab, prompt, torch.tensor([prompt.shape[1]]), generator)
    while True:
        tokens, appended = rules.advance(logits)
        if bool(appended[0]):
            yield int(tokens[0])
        if rules.finished:
            return rules.step
        token, position = rules.next_inputs(tokens)
        logits, keys, values = step(token.view(1, 1), position, keys, values)


def decode(prefill: PrefillFn, step: StepFn, phoneme_ids, bert, prompt, options: SamplingOptions) -> DecodeResult:
    """Run :func:`iter_decode` to the end; returns every new token and ``idx``."""
    tokens: list[int] = []
    iterator = iter_decode(prefill, step, phoneme_ids, bert, prompt, options)
    while True:
        try:
            tokens.append(next(iterator))
        except StopIteration as finished:
            return DecodeResult(torch.tensor(tokens, dtype=torch.long), int(finished.value))


class CachedT2S:
    """Our :class:`KVDecoder` on v2-keyed GPT weights, called like the graph generators (v2 keywords in,
    :class:`DecodeResult` out), so the synthesizer can swap PyTorch and ONNX Runtime decoding freely.

    ``dtype=torch.bfloat16`` runs everything in bf16 (the GPU choice). ``step_weights=torch.bfloat16`` keeps
    ``dtype`` for the prefill, cache and activations and streams bf16 copies of the matrices in each per-token
    step: on CPUs that is the fast batch-1 setting. ``prepack=False`` keeps the step from holding oneDNN-packed
    copies of the matrices (see :class:`KVDecoder`).
    """

    def __init__(
        self,
        weights,
        heads: int,
        dtype: torch.dtype = torch.float32,
        step_weights: torch.dtype | None = None,
        prepack: bool = True,
    ) -> None:
        model = model_from_weights(weights, heads, dtype)
        self.decoder = KVDecoder(model, step_weights=step_weights, prepack=prepack)

    @torch.inference_mode()
    def prefill(self, phoneme_ids: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, room: int = 1):
        """Float32 logits ``[1,V]`` of the first new token; the cache stays inside :attr:`decoder` with ``room``
        free columns for :meth:`KVDecoder.step` calls."""
        prompt = prompt if prompt is not None else phoneme_ids.new_zeros(1, 0)
        p, s = phoneme_ids.shape[1], prompt.shape[1]
        logits = self.decoder.prefill(phoneme_ids, torch.tensor([p]), bert, prompt, torch.tensor([s]), p + s + room)
        return logits.float(), None, None

    def generate(self, phoneme_ids, bert, prompt, options: SamplingOptions, generator=None) -> DecodeResult:
        """Decode one sentence with ``options``; ``idx`` is the stopping step's index as in v2."""
        out = self.decoder.generate(phoneme_ids, bert, prompt, options=options, generator=generator)
        return DecodeResult(out.row(0), out.steps)

    def stream(self, phoneme_ids, bert, prompt, options: SamplingOptions, chunk_sizes: tuple[int, int]):
        """Token chunks while decoding: ``chunk_sizes[0]`` first (low latency), then ``chunk_sizes[1]`` each."""
        first, rest = chunk_sizes
        return self.decoder.stream(phoneme_ids, bert, prompt, options, chunk_size=rest, first_chunk_size=first)

    def __call__(self, phoneme_ids, bert, prompt, **v2_keywords) -> DecodeResult:
        return self.generate(phoneme_ids, bert, prompt, v2_options(**v2_keywords))


class _GraphDecoder:
    """Shared driver of the graph backends: v2 keywords in, :class:`DecodeResult` or token chunks out."""

    def _prefill(self, phoneme_ids, bert, prompt):
        raise NotImplementedError

    def _step(self, token, position, keys, values):
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, phoneme_ids, bert, prompt, **v2_keywords) -> DecodeResult:
        return decode(self._prefill, self._step, phoneme_ids, bert, prompt, v2_options(**v2_keywords))

    def stream(self, phoneme_ids, bert, prompt, options: SamplingOptions, chunk_sizes: tuple[int, int]):
        """Token chunks as :meth:`CachedT2S.stream` yields them, from the host loop."""
        limit, pending = chunk_sizes[0], []
        with torch.inference_mode():
            for token in iter_decode(self._prefill, self._step, phoneme_ids, bert, prompt, options):
                pending.append(token)
                if len(pending) >= limit:
                    yield torch.tensor(pending, dtype=torch.long)
                    limit, pending = chunk_sizes[1], []
        if pending:
            yield torch.tensor(pending, dtype=torch.long)


class TorchGraphGenerator(_GraphDecoder):
    """Decode with the PyTorch export modules built from v2 GPT weights: checks the graphs before exporting."""

    def __init__(self, weights, heads: int) -> None:
        self._prefill = T2SPrefill(weights, heads).eval()
        self._step = T2SStep(weights, heads).eval()


class OnnxGenerator(_GraphDecoder):
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

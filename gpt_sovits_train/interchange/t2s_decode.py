"""Decoding with the v2 ``infer_panel`` keyword contract, over any decode backend.

There is one decode loop (:mod:`gpt_sovits_train.models.gpt.decoding`) and one set of rules
(:class:`~gpt_sovits_train.models.gpt.sampling.DecodeRules`). This module is the v2 boundary: v2's keyword names
(``early_stop_num`` ...) and its ``idx`` exist only here. :class:`T2SDecoder` drives a backend:

* :class:`CachedT2S`: our KV cache on v2-keyed weights (official ``.ckpt``, ours, or safetensors);
* :class:`TorchGraphGenerator`: the PyTorch export modules (checks the graphs before exporting);
* :class:`OnnxGenerator`: ``t2s_prefill.onnx`` / ``t2s_step.onnx`` in ONNX Runtime.

The graphs pass their caches by value; :class:`GraphBackend` holds them between steps.

The v2 rules (``SamplingOptions.v2_compatible``): EOS forbidden for the first 11 steps; repetition penalty over
every earlier token, prompt included; top-p, then temperature, then top-k, then ``argmax(probs / Exponential(1))``;
stop when the argmax of the penalized logits or the sample is EOS (EOS is never appended) or after
``early_stop_num + 1`` new tokens. ``idx`` is the index of the stopping step, which the v2 UI uses to keep
``y[-idx:]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gpt_sovits_train.interchange.onnx import T2SPrefill, T2SStep
from gpt_sovits_train.models.gpt import decoding
from gpt_sovits_train.models.gpt.decoding import DecodeBackend
from gpt_sovits_train.models.gpt.kv_cache import KVDecoder, StepMatrixProvider, parameters_in_place
from gpt_sovits_train.models.gpt.model import model_from_weights
from gpt_sovits_train.models.gpt.sampling import SamplingOptions

MAX_STEPS = 1500  # v2's loop bound when early_stop_num is -1

GraphFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def v2_options(
    top_k: int = SamplingOptions.top_k,
    top_p: float = SamplingOptions.top_p,
    temperature: float = SamplingOptions.temperature,
    repetition_penalty: float = SamplingOptions.repetition_penalty,
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


class GraphBackend:
    """A batch-1 :class:`~gpt_sovits_train.models.gpt.decoding.DecodeBackend` over graph callables that pass the
    caches by value: ``prefill(phoneme_ids, bert, prompt)`` and ``step(token [1,1], position [1], k, v)``, each
    returning ``(logits, k_cache, v_cache)``."""

    def __init__(self, prefill: GraphFn, step: GraphFn) -> None:
        self._prefill, self._step = prefill, step

    def prefill(self, phoneme_ids, phoneme_lens, bert, prompt, prompt_lens, capacity) -> torch.Tensor:
        if phoneme_ids.shape[0] != 1:
            raise ValueError(f"graph backends decode one sentence at a time, got a batch of {phoneme_ids.shape[0]}")
        logits, self.keys, self.values = self._prefill(phoneme_ids, bert, prompt)
        return logits

    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        logits, self.keys, self.values = self._step(tokens.view(1, 1), positions, self.keys, self.values)
        return logits


class T2SDecoder:
    """A decode backend called with v2's keywords (:class:`DecodeResult` out) or with :class:`SamplingOptions`, so
    the synthesizer can swap PyTorch and ONNX Runtime decoding freely. ``decoder`` is the backend."""

    #: graph backends take CPU tensors; the KV cache runs where its weights are
    inputs_on_cpu = True

    def __init__(self, decoder: DecodeBackend) -> None:
        self.decoder = decoder

    def generate(self, phoneme_ids, bert, prompt, options: SamplingOptions, generator=None) -> DecodeResult:
        """Decode one sentence with ``options``; ``idx`` is the stopping step's index as in v2."""
        out = decoding.generate(self.decoder, phoneme_ids, bert, prompt, options=options, generator=generator)
        return DecodeResult(out.row(0), out.steps)

    def stream(
        self, phoneme_ids, bert, prompt, options: SamplingOptions, chunk_sizes: tuple[int, int]
    ) -> Iterator[torch.Tensor]:
        """Token chunks while decoding: ``chunk_sizes[0]`` first (low latency), then ``chunk_sizes[1]`` each."""
        first, rest = chunk_sizes
        return decoding.stream(self.decoder, phoneme_ids, bert, prompt, options, rest, first)

    def __call__(self, phoneme_ids, bert, prompt, **v2_keywords) -> DecodeResult:
        return self.generate(phoneme_ids, bert, prompt, v2_options(**v2_keywords))


class CachedT2S(T2SDecoder):
    """Our :class:`KVDecoder` on v2-keyed GPT weights in ``dtype`` (bf16: the GPU choice); ``matrices`` says how
    the per-token step holds its matrices (``runtime.cpu_packing.StepWeights`` for packed / bf16 copies)."""

    inputs_on_cpu = False

    def __init__(
        self,
        weights,
        heads: int,
        dtype: torch.dtype = torch.float32,
        matrices: StepMatrixProvider = parameters_in_place,
    ) -> None:
        super().__init__(KVDecoder(model_from_weights(weights, heads, dtype), matrices))

    @torch.inference_mode()
    def prefill(self, phoneme_ids: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor | None, room: int = 1):
        """Float32 logits ``[1,V]`` of the first new token; the cache stays inside :attr:`decoder` with ``room``
        free columns for :meth:`KVDecoder.step` calls."""
        prompt = prompt if prompt is not None else phoneme_ids.new_zeros(1, 0)
        p, s = phoneme_ids.shape[1], prompt.shape[1]
        logits = self.decoder.prefill(phoneme_ids, torch.tensor([p]), bert, prompt, torch.tensor([s]), p + s + room)
        return logits.float(), None, None


class TorchGraphGenerator(T2SDecoder):
    """Decode with the PyTorch export modules built from v2 GPT weights: checks the graphs before exporting."""

    def __init__(self, weights, heads: int) -> None:
        super().__init__(GraphBackend(T2SPrefill(weights, heads).eval(), T2SStep(weights, heads).eval()))


class OnnxGenerator(T2SDecoder):
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
        super().__init__(GraphBackend(self._prefill, self._step))

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

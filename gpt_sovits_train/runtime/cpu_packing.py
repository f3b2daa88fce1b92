"""oneDNN-packed (and lower-precision) copies of the GPT decode step's matrices, offered to
:class:`~gpt_sovits_train.models.gpt.kv_cache.KVDecoder` as a step-matrix provider; the model code is untouched.

The per-token step is a chain of ``[B, D] x [D, N]`` products, bound by reading the matrices:

* ``prepack=True`` (CPU tensors in a torch build with oneDNN) gives the step a copy of every matrix in oneDNN's
  blocked layout for this batch size. Same float32 arithmetic in another summation order (logits agree to ~1e-6),
  but the kernel streams the weights instead of striding through them: on a 2-core AVX2 CPU the v2-size matrix
  chain takes 22-25 ms per token instead of 31-33 at batch 1 and 30-35 ms instead of 58-66 at batch 8. It costs
  one more copy of the step matrices (308 MB at v2 size) while the decoder lives.
* ``dtype=torch.bfloat16`` makes that copy bf16: half the bytes per token, while the prefill, the residual stream,
  layer norms, attention and the KV cache keep the model's dtype (a bf16 prefill is a real matrix product, slow on
  CPUs without bf16 units). oneDNN packs bf16 only on CPUs with AVX-512 or AVX-NE-CONVERT; elsewhere the bf16
  copy stays a plain tensor.

Copies are remade whenever a parameter changed in place (an optimizer step) or the batch size changed
(:func:`version_stamp`, shared with the SoVITS runtime's packed convolutions), so a provider may outlive training
steps. ``torch.ops.mkldnn`` ops are private PyTorch API: every call falls back to the plain layout if they fail.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from gpt_sovits_train.models.gpt.kv_cache import StepMatrices
from gpt_sovits_train.models.gpt.model import Linear, Text2SemanticModel


def version_stamp(tensors: Iterable[torch.Tensor]) -> tuple:
    """Storage address, in-place-write counter and dtype of each tensor: equal stamps mean a copy made from these
    tensors is still current (tensors made under ``inference_mode`` count no versions: -1)."""
    stamp = []
    for tensor in tensors:
        try:
            version = tensor._version
        except RuntimeError:
            version = -1
        stamp.append((tensor.data_ptr(), version, tensor.dtype))
    return tuple(stamp)


def onednn_pack(weight: torch.Tensor, batch: int) -> torch.Tensor | None:
    """oneDNN's blocked layout of a ``[out, in]`` linear weight for ``batch`` rows, or None where oneDNN can't
    take it (not a CPU tensor, no oneDNN in this build, or a dtype this CPU has no kernel for, e.g. bf16 without
    AVX-512)."""
    if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, batch)
    except (RuntimeError, AttributeError):
        return None


def onednn_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` over a weight packed by :func:`onednn_pack`."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _step_linear(dtype: torch.dtype | None, packed: bool) -> Linear:
    """The step's ``linear(x, weight, bias)``: plain or oneDNN-packed, with the product in ``dtype`` (None: in
    ``x``'s dtype) while ``x`` and the result keep theirs."""
    matmul = onednn_linear if packed else F.linear
    if dtype is None:
        return matmul

    def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return matmul(x.to(dtype), weight, bias).to(x.dtype)

    return linear


class StepWeights:
    """Step-matrix provider: copies of the matrices in ``dtype`` (None: the model's) and, with ``prepack``, in
    oneDNN's packed layout; with neither, the parameters in place. Use one instance per decoder."""

    def __init__(self, dtype: torch.dtype | None = None, prepack: bool = True) -> None:
        self.dtype, self.prepack = dtype, prepack
        self.packed = False
        self._stamp: tuple | None = None
        self._matrices: StepMatrices | None = None

    def __call__(self, model: Text2SemanticModel, batch: int) -> StepMatrices:
        layers = [layer.weights() for layer in model.h.layers]
        predict = model.ar_predict_layer.weight
        step_dtype = self.dtype if self.dtype not in (None, predict.dtype) else None
        if step_dtype is None and not self.prepack:
            return StepMatrices(layers, predict)
        stamp = (batch, version_stamp(model.parameters()))
        if self._matrices is not None and self._stamp == stamp:
            return self._matrices
        dtype = step_dtype or predict.dtype
        packed = self.prepack and onednn_pack(predict.new_zeros(8, 8, dtype=dtype), batch) is not None
        # Drop the previous copy first: at v2 size it is another 300 MB.
        self._matrices = None

        def weight_copy(weight: torch.Tensor) -> torch.Tensor:
            weight = weight.detach().to(dtype)
            return onednn_pack(weight, batch) if packed else weight

        def bias_copy(bias: torch.Tensor) -> torch.Tensor:
            return bias.detach().to(dtype)

        self._matrices = StepMatrices(
            [layer.map_matrices(weight_copy, bias_copy) for layer in layers],
            weight_copy(predict),
            _step_linear(step_dtype, packed),
        )
        self._stamp, self.packed = stamp, packed
        return self._matrices

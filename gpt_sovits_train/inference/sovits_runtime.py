"""Make a loaded SoVITS generator cheaper to run for synthesis, without touching the model code.

Training needs weight normalization (``weight = g · v / ‖v‖`` recomputed in every forward) and the posterior
encoder ``enc_q``; decoding needs neither. :func:`prepare_sovits_for_inference` therefore

* folds every weight norm into a plain weight once (the legacy ``torch.nn.utils.weight_norm`` hooks the v2
  layout uses, and the newer parametrizations alike), so a decode — or each chunk of a streamed decode — no longer
  renormalizes ~40 convolution kernels;
* drops ``enc_q`` (its weights are not even loaded for inference), freeing its memory;
* optionally casts to ``bfloat16`` (``precision="bf16"``) for GPUs, where the compute-bound HiFi-GAN convolutions
  run faster in bf16; on the reference CPU type PyTorch's bf16 convolutions are far slower, so ``fp32`` is the
  default. Audio then follows bf16 rounding;
* on CPU, gives the HiFi-GAN decoder's convolutions copies of their kernels in oneDNN's blocked layout
  (:func:`pack_decoder_convolutions`). A plain ``nn.Conv1d`` call hands oneDNN a plain kernel that it reorders on
  every call; prepacked, the v2 decoder runs a 10 s decode in 3.9-4.7 s instead of 5.5 s on 2 AVX2 cores, with
  the same fp32 arithmetic (audio within 1e-7). The HiFi-GAN decoder is > 85 % of SoVITS decoding time, so the
  encoders and the flow are left as they are.

The network is changed in place (legacy weight-norm modules cannot be deep-copied, and the synthesizer builds
its own network anyway): in fp32 it computes the same function (folding is exact up to float rounding), but it can
no longer be trained or saved in the v2 key layout, so load a fresh one for that.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

from gpt_sovits_train.runtime.cpu_packing import version_stamp

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def precision_dtype(precision: str) -> torch.dtype:
    """``"fp32"``/``"bf16"`` → the torch dtype, with an error that lists the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def fold_weight_norms(network: nn.Module) -> int:
    """Replace every weight-normalized parameter in ``network`` by its current value; returns how many."""
    folded = 0
    for module in network.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                torch.nn.utils.remove_weight_norm(module, hook.name)
                folded += 1
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                folded += 1
    return folded


class _PackedConvMixin:
    """Forward through a oneDNN-packed copy of the kernel when the input is a CPU tensor of the packed dtype;
    otherwise (moved to a GPU, cast, packing unsupported) behave exactly like the plain layer. The copy is remade
    if the weight changed in place, so it can never go stale. Convolutions are run as 2-D with height 1, the
    layout oneDNN's packing ops accept."""

    _packed: torch.Tensor | None = None
    _packed_stamp: tuple | None = None

    def _input_hint(self) -> list[int]:
        """The input shape oneDNN picks the kernel layout for; any length runs."""
        return [1, self.in_channels, 1, 4096]

    def _refresh_packed(self) -> torch.Tensor | None:
        """The packed kernel for the current weight (packed again only if the weight changed), or None where
        oneDNN has no kernel for its dtype here (float64; bf16 without AVX-512)."""
        stamp = version_stamp([self.weight])
        if self._packed_stamp != stamp:
            try:
                packed = self._pack()
            except RuntimeError:
                packed = None
            self._packed, self._packed_stamp = packed, stamp
        return self._packed

    def _packed_kernel(self, x: torch.Tensor) -> torch.Tensor | None:
        if x.device.type != "cpu" or x.dtype != self.weight.dtype or self.weight.device.type != "cpu":
            return None
        return self._refresh_packed()


class PackedConv1d(_PackedConvMixin, nn.Conv1d):
    """``nn.Conv1d`` (same parameters, same state-dict keys) that runs on a prepacked oneDNN kernel on CPU."""

    def _geometry(self) -> tuple[list[int], list[int], list[int]]:
        return [0, *self.padding], [1, *self.stride], [1, *self.dilation]

    def _pack(self) -> torch.Tensor:
        padding, stride, dilation = self._geometry()
        return torch.ops.mkldnn._reorder_convolution_weight(
            self.weight.detach().unsqueeze(2), padding, stride, dilation, self.groups, self._input_hint()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self._packed_kernel(x)
        if kernel is None:
            return super().forward(x)
        padding, stride, dilation = self._geometry()
        bias = None if self.bias is None else self.bias.detach()
        out = torch.ops.mkldnn._convolution_pointwise(
            x.unsqueeze(2), kernel, bias, padding, stride, dilation, self.groups, "none", [], ""
        )
        return out.squeeze(2)


class PackedConvTranspose1d(_PackedConvMixin, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` (same parameters and keys) that runs on a prepacked oneDNN kernel on CPU."""

    def _geometry(self) -> tuple[list[int], list[int], list[int], list[int]]:
        return [0, *self.padding], [0, *self.output_padding], [1, *self.stride], [1, *self.dilation]

    def _pack(self) -> torch.Tensor:
        padding, output_padding, stride, dilation = self._geometry()
        kernel, hint = self.weight.detach().unsqueeze(2), self._input_hint()
        return torch.ops.mkldnn._reorder_convolution_transpose_weight(
            kernel, padding, output_padding, stride, dilation, self.groups, hint
        )

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        kernel = self._packed_kernel(x) if output_size is None else None
        if kernel is None:
            return super().forward(x, output_size)
        padding, output_padding, stride, dilation = self._geometry()
        bias = None if self.bias is None else self.bias.detach()
        out = torch.ops.mkldnn._convolution_transpose_pointwise(
            x.unsqueeze(2), kernel, bias, padding, output_padding, stride, dilation, self.groups, "none", [], ""
        )
        return out.squeeze(2)


_PACKED = {nn.Conv1d: PackedConv1d, nn.ConvTranspose1d: PackedConvTranspose1d}


def pack_decoder_convolutions(network: nn.Module) -> int:
    """Switch every plain, zero-padded, float32 CPU 1-D (transposed) convolution of ``network.dec`` to its packed
    class, in place (parameters and state-dict keys stay), and pack its kernel now rather than on the first
    decode; returns how many packed. A layer oneDNN cannot pack keeps computing like the plain one. Does nothing
    where this torch build has no oneDNN."""
    decoder = getattr(network, "dec", None)
    if decoder is None or not torch.backends.mkldnn.is_available():
        return 0
    packed = 0
    for module in decoder.modules():
        packed_class = _PACKED.get(type(module))
        if packed_class is None or module.padding_mode != "zeros" or isinstance(module.padding, str):
            continue
        if module.weight.device.type != "cpu" or module.weight.dtype != torch.float32:
            continue
        module.__class__ = packed_class
        packed += module._refresh_packed() is not None
    return packed


def prepare_sovits_for_inference(
    network: nn.Module, precision: str = "fp32", device: torch.device | str = "cpu"
) -> nn.Module:
    """Turn ``network`` (in place) into an eval-mode generator for decoding only on ``device``: weight norms
    folded, ``enc_q`` removed, parameters in ``precision``, decoder convolutions prepacked on CPU. Returns it."""
    dtype = precision_dtype(precision)
    prepared = network.eval()
    if hasattr(prepared, "enc_q"):
        del prepared.enc_q
    with torch.no_grad():
        fold_weight_norms(prepared)
    prepared = prepared.to(device=device, dtype=dtype)
    pack_decoder_convolutions(prepared)
    return prepared

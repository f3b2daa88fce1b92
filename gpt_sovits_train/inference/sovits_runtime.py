"""Make a loaded SoVITS generator cheaper to run for synthesis, without touching the model code.

Training needs weight normalization (``weight = g · v / ‖v‖`` recomputed in every forward) and the posterior
encoder ``enc_q``; decoding needs neither. :func:`prepare_sovits_for_inference` therefore

* folds every weight norm into a plain weight once (the legacy ``torch.nn.utils.weight_norm`` hooks the v2
  layout uses, and the newer parametrizations alike), so a decode — or each chunk of a streamed decode — no longer
  renormalizes ~40 convolution kernels;
* drops ``enc_q`` (its weights are not even loaded for inference), freeing its memory;
* optionally casts to ``bfloat16`` (``precision="bf16"``) for GPUs, where the compute-bound HiFi-GAN convolutions
  run faster in bf16; on the reference CPU type PyTorch's bf16 convolutions are far slower, so ``fp32`` is the
  default. Audio then follows bf16 rounding.

The network is changed in place (legacy weight-norm modules cannot be deep-copied, and the synthesizer builds
its own network anyway): in fp32 it computes the same function (folding is exact up to float rounding), but it can
no longer be trained or saved in the v2 key layout, so load a fresh one for that.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

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


def prepare_sovits_for_inference(network: nn.Module, precision: str = "fp32") -> nn.Module:
    """Turn ``network`` (in place) into an eval-mode generator for decoding only: weight norms folded, ``enc_q``
    removed, parameters in ``precision``. Returns it for chaining."""
    dtype = precision_dtype(precision)
    prepared = network.eval()
    if hasattr(prepared, "enc_q"):
        del prepared.enc_q
    with torch.no_grad():
        fold_weight_norms(prepared)
    return prepared.to(dtype)

"""ONNX Runtime GPT decoding with weight-only quantized step matrices: the ``fast`` batch-1 engine on CPU.

Batch-1 decoding reads every weight once per token, so the bytes per weight set the ceiling (308 MB per token in
fp32 at v2 size, ≈ 77 MB in int8, ≈ 48 MB in 4-bit with its block scales). PyTorch has no maintained weight-only
int8/int4 CPU matmul, ONNX Runtime does: its ``MatMulNBits`` contrib kernel (MLAS) dequantizes blocks of
weights on the fly and, at ``accuracy_level=4``, multiplies them with int8-quantized activations. So this module

1. exports the prefill and KV-cache step graphs with :func:`~gpt_sovits_train.interchange.onnx.export_gpt_onnx`
   (the same graphs ``gst-export`` writes),
2. rewrites the step graph's layer matrices as ``MatMulNBits`` with ``onnxruntime.quantization``'s
   :class:`MatMulNBitsQuantizer` (symmetric, block 32; 8 or 4 bits; int8 compute). The prefill stays float32: it
   runs once per sentence and is compute bound, and every cached key/value it writes stays exact,
3. decodes with :class:`~gpt_sovits_train.interchange.t2s_decode.OnnxGenerator` — the same host loop and the
   same :class:`DecodeRules` as every other backend, so sampling, EOS handling and streaming are unchanged.

Whether the lost precision matters is not assumed: :mod:`gpt_sovits_train.runtime.quality_gate` measures it
against the exact fp32 path before ``runtime=auto`` may pick this engine.

Known cost: the exported step passes the KV cache by value (``concat`` of the old cache and the new row, per
layer), so each step also copies the cache — ≈ 38 MB per token at 60 phonemes + 75 prompt + 250 tokens, half the
int8 weights' bytes. A graph with ONNX Runtime's ``GroupQueryAttention`` and a shared past/present buffer would
remove that copy; it is the next step if this engine becomes the bottleneck.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from gpt_sovits_train.interchange.onnx import export_gpt_onnx
from gpt_sovits_train.interchange.t2s_decode import OnnxGenerator

log = logging.getLogger(__name__)

#: ``gpt`` quantizations this engine offers: bits per weight of the step's layer matrices (None: float32).
QUANTIZATIONS: dict[str, int | None] = {"fp32": None, "int8": 8, "int4": 4}
BLOCK_SIZE = 32


#: ``MatMulNBits`` accuracy level 4: activations are quantized to int8 per block and the product runs on integer
#: dot-product kernels (AVX2/AVX-VNNI/AVX-512 in MLAS). Measured on 2 AVX2 cores, 4 layers of the v2 width: 39
#: steps/s in 4-bit and 26 in 8-bit against 17 for the float32 graph, while the default level (float32 compute,
#: weights dequantized per call) ran 8-bit at 1.5-1.8 steps/s — slower than float32.
ACCURACY_LEVEL = 4


def quantize_step_graph(path: Path, bits: int, block_size: int = BLOCK_SIZE) -> int:
    """Rewrite the ``MatMul`` nodes with constant weights in the ONNX file at ``path`` as weight-only ``bits``-bit
    ``MatMulNBits`` (symmetric, ``block_size`` weights per scale, :data:`ACCURACY_LEVEL`), in place; returns how
    many were rewritten."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        unshare_weights(onnx.load(str(path))), bits=bits, block_size=block_size, is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
    )
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")  # one INFO line per node
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        quantizer.process()
    finally:
        chatty.setLevel(level)
    model = quantizer.model.model
    onnx.save(model, str(path))
    return sum(node.op_type == "MatMulNBits" for node in model.graph.node)


def unshare_weights(model):
    """Give every ``Identity`` of a weight its own copy of that weight, in place; returns ``model``.

    The exporter stores equal weights once and reaches the repeats through ``Identity`` nodes (freshly initialized
    v2 layers are clones of one another), and the quantizer rewrites only products whose weight is an initializer:
    without this, those layers would stay float32."""
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            copy = type(weights[node.input[0]])()
            copy.CopyFrom(weights[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


class OrtGPT(OnnxGenerator):
    """The GPT stage on ONNX Runtime, built from v2-keyed weights into ``folder`` with the step matrices in
    ``quantization`` (``fp32`` | ``int8`` | ``int4``); decodes like :class:`OnnxGenerator` (its ``decoder`` is
    the backend the quality gate drives)."""

    def __init__(
        self,
        weights: Mapping[str, torch.Tensor],
        heads: int,
        folder: str | Path,
        quantization: str = "int8",
        threads: int | None = None,
    ) -> None:
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {sorted(QUANTIZATIONS)}, got {quantization!r}")
        paths = export_gpt_onnx(weights, heads, folder)
        bits = QUANTIZATIONS[quantization]
        if bits is not None:
            rewritten = quantize_step_graph(Path(paths["step"]), bits)
            log.info("ONNX Runtime GPT step: %d matrices as %d-bit MatMulNBits (block %d)", rewritten, bits, BLOCK_SIZE)
        super().__init__(folder, threads=torch.get_num_threads() if threads is None else threads)
        self.quantization = quantization

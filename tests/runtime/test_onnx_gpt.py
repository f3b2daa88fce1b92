"""The ONNX Runtime engine quantizes every matrix of the step graph, not a lucky subset.

After the GPT layer was written once (rows ``[1,D]`` through ``F.linear``), torch exported the step's products as
``Gemm``, which the weight-only quantizer skips: ``ort-int8`` then decoded almost entirely in float32 and passed its
quality gate trivially. The fixture's layers are clones (as v2 initializes them), which the exporter stores once
behind ``Identity`` nodes; those must be quantized too. The count below fails on either graph."""

from __future__ import annotations

import pytest

from gpt_sovits_train.interchange.onnx import export_gpt_onnx

pytest.importorskip("onnxruntime.quantization.matmul_nbits_quantizer", reason="pip install -e .[runtime]")


@pytest.mark.parametrize("bits", [8, 4])
def test_every_step_matrix_becomes_matmulnbits(tiny_gpt_weights, tiny_gpt_heads, tmp_path, bits) -> None:
    import onnx

    from gpt_sovits_train.runtime.onnx_gpt import quantize_step_graph

    layers = sum(key.endswith("self_attn.in_proj_weight") for key in tiny_gpt_weights)
    paths = export_gpt_onnx(tiny_gpt_weights, tiny_gpt_heads, tmp_path)
    expected = 4 * layers + 1  # in_proj, out_proj, two FFN matrices per layer, and the logits head
    assert quantize_step_graph(paths["step"], bits) == expected
    graph = onnx.load(str(paths["step"])).graph
    constants = {init.name for init in graph.initializer if len(init.dims) == 2}
    float_products = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and set(n.input) & constants]
    assert float_products == [], float_products

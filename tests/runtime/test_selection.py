"""``runtime=auto`` picks engines on this CPU, says which and why the others lost; ``fast`` only takes gated ones."""

from __future__ import annotations

import logging

import pytest
import torch

from gpt_sovits_train.runtime.cpu import cpu_flags, has_bf16_units, isa_summary
from gpt_sovits_train.runtime.quality_gate import GateInputs
from gpt_sovits_train.runtime.selection import GPT_ENGINES, select_runtime


def _decodes(decoder) -> int:
    generator = torch.Generator().manual_seed(3)
    phones, bert = torch.randint(1, 732, (1, 8), generator=generator), torch.randn(1, 1024, 8, generator=generator)
    prompt = torch.randint(0, 1024, (1, 6), generator=generator)
    return decoder(phones, bert, prompt, early_stop_num=12).new_tokens.numel()


def test_auto_picks_an_engine_on_this_cpu_and_says_which(tiny_gpt_weights, tiny_gpt_heads, build_tiny_sovits,
                                                         caplog) -> None:
    with caplog.at_level(logging.INFO, logger="gpt_sovits_train.runtime.selection"):
        choice = select_runtime("auto", tiny_gpt_weights, tiny_gpt_heads, build_tiny_sovits, GateInputs.tiny())
    gpt = choice.report["gpt"]
    assert choice.gpt_engine in GPT_ENGINES and set(gpt) == set(GPT_ENGINES)
    assert [name for name, entry in gpt.items() if entry.get("picked")] == [choice.gpt_engine]
    assert all(entry["rejected"] for name, entry in gpt.items() if name != choice.gpt_engine)
    assert "tokens_per_s" in gpt[choice.gpt_engine]
    for name, entry in gpt.items():  # every candidate that was timed passed the gate first
        if "tokens_per_s" in entry and name != "torch-fp32":
            assert entry["gate"]["passed"]
    assert f"picked GPT engine {choice.gpt_engine}" in caplog.text
    assert _decodes(choice.gpt) > 0
    sovits = choice.report["sovits"]
    assert choice.report["bf16_units"] == has_bf16_units()
    assert [name for name, entry in sovits.items() if entry.get("picked")] == [choice.sovits_precision]
    if not has_bf16_units():
        assert choice.sovits_precision == "fp32" and "no bf16 units" in sovits["bf16"]["rejected"]
    else:  # bf16 is a candidate: gated (the tiny fixture's decoder may fail it), then timed against fp32
        gate = sovits["bf16"]["gate"]
        assert gate["passed"] == (gate["metrics"]["snr_db"] >= 30.0)
        if not gate["passed"]:
            assert choice.sovits_precision == "fp32" and "quality gate" in sovits["bf16"]["rejected"]
        else:
            assert ("decode_s" in sovits["bf16"]) and ("decode_s" in sovits["fp32"])
    if choice.sovits_precision == "fp32":
        assert "SoVITS engine bf16 rejected" in caplog.text
    print(f"auto on this CPU ({sorted(f for f, on in isa_summary().items() if on)}): {choice.gpt_engine}")


def test_fast_refuses_when_no_fast_engine_passes_the_gate(tiny_gpt_weights, tiny_gpt_heads, monkeypatch) -> None:
    """When no fast engine passes the gate, ``fast`` must say so (with every engine's figures) instead of quietly
    decoding with one of them. Which engines pass at tiny size depends on the fixture's near-tied logits, so the
    gate is made unpassable (top-1 agreement above 100 %) rather than relying on that."""
    from gpt_sovits_train.runtime import quality_gate

    pytest.importorskip("onnxruntime.quantization.matmul_nbits_quantizer", reason="pip install -e .[runtime]")
    monkeypatch.setattr(quality_gate, "MIN_TOP1", 1.01)
    with pytest.raises(RuntimeError, match="no fast GPT engine passed the quality gate") as raised:
        select_runtime("fast", tiny_gpt_weights, tiny_gpt_heads, gate_inputs=GateInputs.tiny())
    assert "top1_agreement" in str(raised.value)


def test_unknown_runtime_is_refused(tiny_gpt_weights, tiny_gpt_heads) -> None:
    with pytest.raises(ValueError, match="runtime must be one of"):
        select_runtime("fastest", tiny_gpt_weights, tiny_gpt_heads)


def test_cpu_flags_are_read_from_this_machine() -> None:
    flags = cpu_flags()
    summary = isa_summary()
    assert all(summary[name] == (name in flags) for name in summary)
    assert has_bf16_units() == bool({"amx_bf16", "avx512_bf16"} & flags)

"""v2-contract decoding reproduces the reference greedy decodes exactly through every backend: our KV decoder on
the v2 weights, the PyTorch export graphs and ONNX Runtime all share one set of decoding rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gpt_sovits_train.interchange.onnx import export_gpt_onnx
from gpt_sovits_train.interchange.t2s_decode import CachedT2S, OnnxGenerator, TorchGraphGenerator, v2_options
from gpt_sovits_train.models.gpt.sampling import SamplingOptions, choose, process_logits
from tests.reference_fixtures import early_stop_num


@pytest.fixture(scope="module")
def fixture(ref_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ref_dir / "tiny_t2s.safetensors"))


@pytest.fixture(scope="module")
def heads(t2s_meta: dict) -> int:
    return t2s_meta["config"]["model"]["head"]


def _chunk_sizes(total: int, first: int, rest: int) -> list[int]:
    """What chunked streaming must yield for ``total`` tokens: ``first``, then ``rest`` each, then the remainder."""
    sizes = [min(first, total)]
    left = total - sizes[0]
    sizes += [rest] * (left // rest) + ([left % rest] if left % rest else [])
    return sizes


def _inputs(fx):
    return fx["input.tf.phoneme_ids"], fx["input.tf.bert_feature"], fx["input.tf.prompt_semantic"]


def _weights(fx):
    return {k[7:]: v for k, v in fx.items() if k.startswith("weight.")}


@pytest.mark.parametrize(("name", "penalty"), [("greedy", 1.0), ("greedy_rp135", 1.35)])
def test_greedy_decode_matches_reference(fixture, heads, t2s_meta, name: str, penalty: float, tmp_path: Path) -> None:
    stop = early_stop_num(t2s_meta)
    options = {"top_k": 1, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": penalty, "early_stop_num": stop}
    expected_ids = fixture[f"output.{name}.new_ids"][0].tolist()
    expected_idx = int(fixture[f"output.{name}.idx"][0])
    torch_result = TorchGraphGenerator(_weights(fixture), heads=heads)(*_inputs(fixture), **options)
    assert torch_result.new_tokens.tolist() == expected_ids
    assert torch_result.idx == expected_idx
    cached = CachedT2S(_weights(fixture), heads=heads)(*_inputs(fixture), **options)
    assert cached.new_tokens.tolist() == expected_ids
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install -e .[dev])")
    export_gpt_onnx(_weights(fixture), heads=heads, folder=tmp_path)
    onnx_result = OnnxGenerator(tmp_path, threads=1)(*_inputs(fixture), **options)
    assert onnx_result.new_tokens.tolist() == expected_ids
    assert onnx_result.kept().numel() == expected_idx


def test_reference_free_decode_and_eos_rules(fixture, heads) -> None:
    phonemes, bert, _ = _inputs(fixture)
    torch.manual_seed(0)
    result = TorchGraphGenerator(_weights(fixture), heads=heads)(phonemes, bert, None, top_k=5, early_stop_num=30)
    assert 0 < result.new_tokens.numel() <= 31
    assert int(result.new_tokens.max()) < 1024  # EOS is never emitted as a code
    # v2 blocks EOS for the first 11 steps, then stops as soon as the argmax (or the sample) is EOS. Make EOS the argmax
    # everywhere: the last layer's output LayerNorm gets gain 0, so every hidden state is its bias b; the EOS row of
    # the head becomes 100 b. Then the decode must be exactly 11 tokens, none of them EOS.
    weights = _weights(fixture)
    last = max(int(k.split(".")[2]) for k in weights if k.startswith("h.layers."))
    bias = weights[f"h.layers.{last}.norm2.bias"].float()
    weights[f"h.layers.{last}.norm2.weight"] = torch.zeros_like(weights[f"h.layers.{last}.norm2.weight"])
    head = weights["ar_predict_layer.weight"].float().clone()
    head[1024] = 100 * bias / bias.norm()
    weights["ar_predict_layer.weight"] = head
    for prompt in (None, fixture["input.tf.prompt_semantic"]):
        torch.manual_seed(0)
        blocked = TorchGraphGenerator(weights, heads=heads)(phonemes, bert, prompt, top_k=5, early_stop_num=30)
        assert blocked.new_tokens.numel() == 11, blocked.new_tokens
        assert int(blocked.new_tokens.max()) < 1024


def _sample(logits: torch.Tensor, seen: list[int], top_k: int, top_p: float, penalty: float) -> int:
    options = SamplingOptions(top_k=top_k, top_p=top_p, repetition_penalty=penalty)
    mask = torch.zeros(1, logits.numel(), dtype=torch.bool)
    mask[0, seen] = True
    return int(choose(process_logits(logits.unsqueeze(0), mask, options, False, 3), options)[0])


def test_sampling_filters() -> None:
    logits = torch.tensor([5.0, 4.0, -1.0, 0.5])
    for _ in range(20):
        assert _sample(logits, [], 2, 1.0, 1.0) in (0, 1)
    # A strong penalty on token 0 makes token 1 the greedy choice.
    assert _sample(logits, [0], 1, 1.0, 10.0) == 1
    # top_p small keeps only the most likely token.
    assert _sample(logits, [], 4, 0.1, 1.0) == 0


def test_v2_keywords_map_to_the_v2_rules() -> None:
    options = v2_options(top_k=3, early_stop_num=19)
    assert options.max_new_tokens == 20 and options.eos_blocked_steps == 11
    assert options.penalize_prompt and options.stop_on_argmax_eos
    assert v2_options().max_new_tokens == 1500


def test_bfloat16_cached_decoder_stays_close(fixture, heads) -> None:
    phonemes, bert, prompt = _inputs(fixture)
    full = CachedT2S(_weights(fixture), heads=heads)
    half = CachedT2S(_weights(fixture), heads=heads, dtype=torch.bfloat16)
    reference, _, _ = full.prefill(phonemes, bert, prompt)
    approx, _, _ = half.prefill(phonemes, bert, prompt)
    assert approx.dtype == torch.float32
    # Measured (bf16 matrices, float32 accumulation): max |error| 0.018 (prefill) / 0.020 (step) with logits peaking at
    # 1.74 on the vendored fixture, 0.009 / 0.012 at 2.04 on a second fixture set: about 1 % of the peak. The bound is
    # 2.5 % of the peak (0.043 here), so a shift of the logits by a few hundredths or a wrong cast fails it.
    bound = 0.025 * float(reference.abs().max())
    torch.testing.assert_close(approx, reference, atol=bound, rtol=0)
    token = fixture["output.greedy.new_ids"][0, :1].view(1, 1)
    with torch.inference_mode():
        step_full = full.decoder.step(token.view(1), torch.tensor([prompt.shape[1]]))
        step_half = half.decoder.step(token.view(1), torch.tensor([prompt.shape[1]])).float()
    torch.testing.assert_close(step_half, step_full, atol=0.025 * float(step_full.abs().max()), rtol=0)


def test_stream_chunks_concatenate_to_the_full_decode(fixture, heads, t2s_meta) -> None:
    options = v2_options(top_k=1, repetition_penalty=1.35, early_stop_num=early_stop_num(t2s_meta))
    expected = fixture["output.greedy_rp135.new_ids"][0].tolist()
    chunks = list(CachedT2S(_weights(fixture), heads=heads).stream(*_inputs(fixture), options, (3, 8)))
    assert [c.numel() for c in chunks] == _chunk_sizes(len(expected), 3, 8)
    assert torch.cat(chunks).tolist() == expected


def test_graph_decoder_streams_the_same_tokens(fixture, heads, t2s_meta) -> None:
    options = v2_options(top_k=1, repetition_penalty=1.35, early_stop_num=early_stop_num(t2s_meta))
    expected = fixture["output.greedy_rp135.new_ids"][0].tolist()
    chunks = list(TorchGraphGenerator(_weights(fixture), heads=heads).stream(*_inputs(fixture), options, (3, 8)))
    assert [c.numel() for c in chunks] == _chunk_sizes(len(expected), 3, 8)
    assert torch.cat(chunks).tolist() == expected

"""Packed / bf16 step matrices (``runtime/cpu_packing.py``) decode like the parameters in place, and follow
in-place parameter updates (an optimizer step) through the shared version stamp."""

from __future__ import annotations

import pytest
import torch

from gpt_sovits_train.models.gpt.kv_cache import KVDecoder
from gpt_sovits_train.models.gpt.model import Text2SemanticModel
from gpt_sovits_train.models.gpt.sampling import SamplingOptions
from gpt_sovits_train.runtime.cpu_packing import StepWeights, version_stamp
from tests.models.gpt.test_kv_cache import TINY, _inputs


def test_bf16_step_weights_track_float32_and_follow_weight_updates():
    """``StepWeights(bf16)``: the prefill is untouched, each step's logits stay within bf16 rounding of float32,
    and an in-place update of the parameters (an optimizer step) reaches the bf16 copy."""
    model = Text2SemanticModel(TINY).eval()
    phonemes, bert, prompt = _inputs(2, 7, 5, seed=4)
    options = SamplingOptions(greedy=True, max_new_tokens=8)
    exact = KVDecoder(model).generate(phonemes, bert, prompt, options=options, record_logits=True)
    decoder = KVDecoder(model, StepWeights(torch.bfloat16, prepack=False))  # plain tensors, to inspect them
    fast = decoder.generate(phonemes, bert, prompt, options=options, record_logits=True)
    torch.testing.assert_close(fast.step_logits[0], exact.step_logits[0])  # the prefill runs on the float32 model
    # Same tokens fed to both, so any difference is the step's bf16 matrices alone.
    exact_step = KVDecoder(model)
    tokens, positions = torch.tensor([3, 9]), torch.tensor([5, 5])
    with torch.inference_mode():
        exact_step.prefill(phonemes, torch.tensor([7, 7]), bert, prompt, torch.tensor([5, 5]), 20)
        decoder.prefill(phonemes, torch.tensor([7, 7]), bert, prompt, torch.tensor([5, 5]), 20)
        reference, approx = exact_step.step(tokens, positions), decoder.step(tokens, positions)
    assert approx.dtype == torch.float32 and not torch.equal(approx, reference)
    torch.testing.assert_close(approx, reference, atol=2e-2, rtol=2e-2)
    first_layer = decoder.weights[0]
    assert first_layer.in_weight.dtype == torch.bfloat16 and first_layer.norm1_weight.dtype == torch.float32

    with torch.no_grad():
        model.ar_predict_layer.weight.mul_(2.0)  # in place, as an optimizer step writes
    with torch.inference_mode():
        decoder.prefill(phonemes, torch.tensor([7, 7]), bert, prompt, torch.tensor([5, 5]), 20)
    torch.testing.assert_close(decoder.predict_weight.float(), model.ar_predict_layer.weight, atol=1e-2, rtol=1e-2)
    same = StepWeights(torch.float32, prepack=False)(model, 2)  # same dtype, no packing: the parameters in place
    assert same.predict_weight is model.ar_predict_layer.weight


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_prepacked_step_matches_plain_linear_and_follows_weight_updates():
    """oneDNN-packed step matrices (the synthesizer's CPU default) compute the same float32 products in another
    order: logits
    agree to float32 rounding and greedy tokens are identical, at batch 1 and batch 3; after an in-place update of
    the parameters the packed copy is remade, so a decoder may outlive optimizer steps."""
    model = Text2SemanticModel(TINY).eval()
    options = SamplingOptions(greedy=True, max_new_tokens=10)
    provider = StepWeights()
    packed, plain = KVDecoder(model, provider), KVDecoder(model)
    for batch in (1, 3):
        phonemes, bert, prompt = _inputs(batch, 7, 5, seed=batch)
        fast = packed.generate(phonemes, bert, prompt, options=options, record_logits=True)
        exact = plain.generate(phonemes, bert, prompt, options=options, record_logits=True)
        assert provider.packed
        assert torch.equal(fast.tokens, exact.tokens)
        for approx, reference in zip(fast.step_logits, exact.step_logits, strict=True):
            torch.testing.assert_close(approx, reference, atol=1e-5, rtol=1e-5)

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5)  # in place, as an optimizer step writes
    phonemes, bert, prompt = _inputs(1, 7, 5, seed=9)
    fast = packed.generate(phonemes, bert, prompt, options=options, record_logits=True)
    exact = plain.generate(phonemes, bert, prompt, options=options, record_logits=True)
    assert torch.equal(fast.tokens, exact.tokens)
    torch.testing.assert_close(fast.step_logits[-1], exact.step_logits[-1], atol=1e-4, rtol=1e-5)


def test_version_stamp_changes_on_in_place_writes_and_dtype() -> None:
    weight = torch.ones(3)
    before = version_stamp([weight])
    assert version_stamp([weight]) == before
    weight.add_(1.0)
    assert version_stamp([weight]) != before
    assert version_stamp([weight.double()]) != version_stamp([weight])
    with torch.inference_mode():
        frozen = torch.ones(3)
    assert version_stamp([frozen])[0][1] == -1  # inference tensors count no versions

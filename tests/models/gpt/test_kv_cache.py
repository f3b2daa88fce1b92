"""KV-cache decoding agrees with full recomputation, batches decode like single rows, streaming like generate."""

from __future__ import annotations

import pytest
import torch

from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel
from gpt_sovits_train.models.gpt.sampling import KVDecoder, SamplingOptions

TINY = GPTConfig(embedding_dim=32, hidden_dim=32, num_heads=4, num_layers=2, ffn_dim=64, max_positions=256)


def _inputs(batch: int, phonemes: int, prompt: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(1, 732, (batch, phonemes), generator=g),
        torch.randn(batch, 1024, phonemes, generator=g),
        torch.randint(0, 1024, (batch, prompt), generator=g),
    )


def _full_recompute_logits(model, phonemes, bert, sequence):
    """Logits for the next token after ``sequence`` by running the whole teacher-forced pass again."""
    lens = torch.tensor([sequence.shape[1]])
    logits, _ = model.teacher_forced(phonemes, torch.tensor([phonemes.shape[1]]), sequence, lens, bert)
    return logits[:, -1]


def test_kv_cache_tokens_and_logits_equal_full_recompute():
    model = Text2SemanticModel(TINY).eval()
    phonemes, bert, prompt = _inputs(1, 7, 5)
    options = SamplingOptions(greedy=True, repetition_penalty=1.0, top_k=0, max_new_tokens=12)
    out = KVDecoder(model).generate(phonemes, bert, prompt, options=options, record_logits=True)
    sequence = prompt
    with torch.no_grad():
        for step, cached_logits in enumerate(out.step_logits):
            full = _full_recompute_logits(model, phonemes, bert, sequence)
            torch.testing.assert_close(cached_logits, full, atol=1e-5, rtol=1e-4)
            if step < int(out.lengths[0]):
                assert int(full.argmax()) == int(out.tokens[0, step])
                sequence = torch.cat([sequence, full.argmax(-1, keepdim=True)], 1)


def test_batched_rows_decode_as_they_would_alone():
    model = Text2SemanticModel(TINY).eval()
    phonemes, bert, prompt = _inputs(3, 9, 6, seed=1)
    phoneme_lens = torch.tensor([9, 5, 7])
    prompt_lens = torch.tensor([6, 3, 0])
    options = SamplingOptions(greedy=True, max_new_tokens=10)
    decoder = KVDecoder(model)
    batched = decoder.generate(phonemes, bert, prompt, phoneme_lens, prompt_lens, options=options)
    for i in range(3):
        p, s = int(phoneme_lens[i]), int(prompt_lens[i])
        alone = decoder.generate(
            phonemes[i : i + 1, :p], bert[i : i + 1, :, :p], prompt[i : i + 1, :s], options=options
        )
        assert torch.equal(batched.row(i), alone.row(0))


def test_stream_chunks_concatenate_to_generate():
    model = Text2SemanticModel(TINY).eval()
    phonemes, bert, prompt = _inputs(1, 6, 4, seed=2)
    options = SamplingOptions(top_k=5, max_new_tokens=17)
    decoder = KVDecoder(model)
    full = decoder.generate(phonemes, bert, prompt, options=options, generator=torch.Generator().manual_seed(5))
    chunks = list(
        decoder.stream(
            phonemes,
            bert,
            prompt,
            options,
            chunk_size=6,
            first_chunk_size=2,
            generator=torch.Generator().manual_seed(5),
        )
    )
    assert len(chunks[0]) == min(2, int(full.lengths[0]))
    assert torch.equal(torch.cat(chunks), full.row(0))


def test_max_new_tokens_and_eos_blocking():
    model = Text2SemanticModel(TINY).eval()
    with torch.no_grad():  # last hidden state is all ones and only the EOS row of the head reads it
        model.h.layers[-1].norm2.weight.zero_()
        model.h.layers[-1].norm2.bias.fill_(1.0)
        model.ar_predict_layer.weight.zero_()
        model.ar_predict_layer.weight[model.eos] = 1.0
    phonemes, bert, prompt = _inputs(1, 5, 3, seed=3)
    decoder = KVDecoder(model)
    stopped = decoder.generate(phonemes, bert, prompt, options=SamplingOptions(greedy=True, max_new_tokens=30))
    assert int(stopped.lengths[0]) == 0 and bool(stopped.finished_by_eos[0])
    blocked = decoder.generate(
        phonemes, bert, prompt, options=SamplingOptions(greedy=True, max_new_tokens=4, eos_blocked_steps=11)
    )
    assert int(blocked.lengths[0]) == 4 and not bool(blocked.finished_by_eos[0])
    assert (blocked.row(0) != model.eos).all()


def test_bad_shapes_are_reported():
    model = Text2SemanticModel(TINY).eval()
    phonemes, bert, prompt = _inputs(2, 5, 3)
    decoder = KVDecoder(model)
    try:
        decoder.generate(phonemes, bert, prompt[:1])
    except ValueError as error:
        assert "prompt must be [B, S]" in str(error)
    else:
        raise AssertionError("mismatched prompt batch was accepted")


def test_bf16_step_weights_track_float32_and_follow_weight_updates():
    """``step_weights=bf16``: the prefill is untouched, each step's logits stay within bf16 rounding of float32,
    and an in-place update of the parameters (an optimizer step) reaches the bf16 copy."""
    model = Text2SemanticModel(TINY).eval()
    phonemes, bert, prompt = _inputs(2, 7, 5, seed=4)
    options = SamplingOptions(greedy=True, max_new_tokens=8)
    exact = KVDecoder(model).generate(phonemes, bert, prompt, options=options, record_logits=True)
    decoder = KVDecoder(model, step_weights=torch.bfloat16, prepack=False)  # plain tensors, to inspect them
    fast = decoder.generate(phonemes, bert, prompt, options=options, record_logits=True)
    torch.testing.assert_close(fast.step_logits[0], exact.step_logits[0])  # the prefill runs on the float32 model
    # Same tokens fed to both, so any difference is the step's bf16 matrices alone.
    exact_step = KVDecoder(model, prepack=False)
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
    assert KVDecoder(model, step_weights=torch.float32).step_dtype is None  # same dtype: no copy


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_prepacked_step_matches_plain_linear_and_follows_weight_updates():
    """oneDNN-packed step matrices (the CPU default) compute the same float32 products in another order: logits
    agree to float32 rounding and greedy tokens are identical, at batch 1 and batch 3; after an in-place update of
    the parameters the packed copy is remade, so a decoder may outlive optimizer steps."""
    model = Text2SemanticModel(TINY).eval()
    options = SamplingOptions(greedy=True, max_new_tokens=10)
    packed, plain = KVDecoder(model), KVDecoder(model, prepack=False)
    for batch in (1, 3):
        phonemes, bert, prompt = _inputs(batch, 7, 5, seed=batch)
        fast = packed.generate(phonemes, bert, prompt, options=options, record_logits=True)
        exact = plain.generate(phonemes, bert, prompt, options=options, record_logits=True)
        assert packed._matrices is not None and packed._matrices.packed
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


def test_gpt_precision_choices_are_named_in_the_error():
    from gpt_sovits_train.inference.factory import gpt_precision

    assert gpt_precision("bf16-weights") == (torch.float32, torch.bfloat16)
    assert gpt_precision("fp32") == (torch.float32, None)
    with pytest.raises(ValueError, match="bf16-weights"):
        gpt_precision("int4")

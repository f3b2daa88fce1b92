"""KV-cache decoding agrees with full recomputation, batches decode like single rows, streaming like generate."""

from __future__ import annotations

import pytest
import torch

from gpt_sovits_train.models.gpt.kv_cache import KVDecoder
from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel
from gpt_sovits_train.models.gpt.sampling import SamplingOptions

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


def test_gpt_precision_choices_are_named_in_the_error():
    from gpt_sovits_train.inference.factory import gpt_precision

    assert gpt_precision("bf16-weights") == (torch.float32, torch.bfloat16)
    assert gpt_precision("fp32") == (torch.float32, None)
    with pytest.raises(ValueError, match="bf16-weights"):
        gpt_precision("int4")

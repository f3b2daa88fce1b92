"""GPT-stage speed (PERFORMANCE.md workloads): training step, KV-cache decode at batch 1 and batch 8.

Full v2 size, float32, 2 CPU threads, random weights (speed does not depend on their values). ``quick=True`` runs
the tiny preset with small shapes so a test can smoke-run every function in seconds. Peak RSS is the process
high-water mark from ``resource.getrusage`` (it includes whatever ran earlier in the same process).
"""

from __future__ import annotations

import time
from functools import partial

import torch

from gpt_sovits_train.benchmarks import peak_rss_mb
from gpt_sovits_train.lit.gpt_module import GPTModule
from gpt_sovits_train.lit.optim import ScaledAdam
from gpt_sovits_train.models.gpt.kv_cache import KVDecoder
from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel
from gpt_sovits_train.models.gpt.sampling import SamplingOptions
from gpt_sovits_train.runtime.cpu_packing import StepWeights

V2 = GPTConfig()
TINY = GPTConfig(embedding_dim=64, hidden_dim=64, num_heads=4, num_layers=2, ffn_dim=256, max_positions=1024)


def _batch(batch: int, phonemes: int, semantic: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "phoneme_ids": torch.randint(1, 732, (batch, phonemes), generator=g),
        "phoneme_ids_len": torch.full((batch,), phonemes),
        "bert_feature": torch.randn(batch, 1024, phonemes, generator=g),
        "semantic_ids": torch.randint(0, 1024, (batch, semantic), generator=g),
        "semantic_ids_len": torch.full((batch,), semantic),
    }


def run_gpt_train(quick: bool = False, scaled_adam: bool = False) -> dict:
    """One AdamW training step (forward, backward, step) at batch 4, 60 phonemes, 250 semantic tokens."""
    torch.set_num_threads(2)
    cfg, (b, p, s), steps = (TINY, (2, 12, 30), 2) if quick else (V2, (4, 60, 250), 3)
    if scaled_adam:  # v2's optimizer as conf/model/gpt_optim/v2.yaml builds it; it clips by itself
        optimizer = partial(ScaledAdam, lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0, clipping_update_period=1000)
    else:
        optimizer = partial(torch.optim.AdamW, lr=1e-4)
    module = GPTModule(Text2SemanticModel(cfg), optimizer=optimizer, loss_normalization="sum")
    module.train()
    optimizer = module.configure_optimizers()
    batch = _batch(b, p, s)
    times = []
    for _ in range(steps + 1):  # the first step (allocator warm-up, AdamW state creation) is not timed
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        module.compute_losses(batch)["loss"].backward()
        if not scaled_adam:
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    per_step = sum(times[1:]) / steps
    return {
        "size": "tiny" if quick else "v2",
        "optimizer": "ScaledAdam" if scaled_adam else "AdamW",
        "batch": b,
        "s_per_step": round(per_step, 3),
        "semantic_tokens_per_s": round(b * s / per_step, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
    }



def run_gpt_train_scaled_adam(quick: bool = False) -> dict:
    """The same step with v2's optimizer (ScaledAdam), as the v2 fine-tune recipe trains."""
    return run_gpt_train(quick, scaled_adam=True)


def _decode(batch: int, quick: bool, step_weights: torch.dtype | None = None) -> dict:
    torch.set_num_threads(2)
    cfg, (p, prompt_len, new) = (TINY, (12, 10, 20)) if quick else (V2, (60, 75, 250))
    model = Text2SemanticModel(cfg).eval()
    data = _batch(batch, p, prompt_len, seed=1)
    # EOS is kept out of the way so exactly ``new`` tokens are produced, as the workload defines.
    options = SamplingOptions(
        top_k=15, top_p=1.0, temperature=1.0, repetition_penalty=1.35, max_new_tokens=new, eos_blocked_steps=new
    )
    decoder = KVDecoder(model, StepWeights(step_weights))
    decoder.generate(
        data["phoneme_ids"],
        data["bert_feature"],
        data["semantic_ids"],
        options=SamplingOptions(max_new_tokens=3, eos_blocked_steps=3),
    )  # warm-up
    start = time.perf_counter()
    out = decoder.generate(
        data["phoneme_ids"],
        data["bert_feature"],
        data["semantic_ids"],
        options=options,
        generator=torch.Generator().manual_seed(0),
    )
    elapsed = time.perf_counter() - start
    produced = int(out.lengths.sum())
    return {
        "size": "tiny" if quick else "v2",
        "batch": batch,
        "step_weights": str(step_weights or "float32").removeprefix("torch."),
        "new_tokens_per_row": new,
        "seconds": round(elapsed, 3),
        "tokens_per_s": round(produced / elapsed, 1),
        "per_row_tokens_per_s": round(produced / batch / elapsed, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
    }


def run_gpt_decode_b1(quick: bool = False) -> dict:
    """KV-cache decode, batch 1: 60 phonemes, 75-token prompt, 250 new tokens, top-k 15, penalty 1.35."""
    return _decode(1, quick)


def run_gpt_decode_b8(quick: bool = False) -> dict:
    """The same decode at batch 8 (tokens/s counts all rows)."""
    return _decode(8, quick)


def run_gpt_decode_b1_bf16_weights(quick: bool = False) -> dict:
    """The batch-1 decode with the step's matrices in bf16 (``gpt.precision=bf16-weights``), all else float32."""
    return _decode(1, quick, torch.bfloat16)

"""End-to-end synthesis speed (PERFORMANCE.md ``e2e_rtf``): text → wav for a 10 s utterance on CPU.

Stages timed separately, model loading excluded: frontend (text → phones), GPT (prefill + KV-cache decode of
exactly 250 tokens with the v2 sampling rules, 75-token prompt), SoVITS decode (250 codes, 3 s reference, 60 phones,
noise 0.5). Weights are random at the full v2 sizes from the reference manifest: speed does not depend on values.
Also reported: first-chunk latency of the streaming path (prefill + first chunk of tokens + its decode).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from gpt_sovits_train.interchange.t2s_decode import sample_next

MANIFEST = Path(__file__).resolve().parents[3] / "shared" / "reference" / "v2_state_dict_manifest.json"
SEMANTIC_HZ = 25
TEXT = "The morning train to the coast leaves at seven fifteen, so please be on time."


def _manifest() -> dict[str, Any]:
    import os

    folder = os.environ.get("GST_REFERENCE_DIR")
    path = Path(folder) / "v2_state_dict_manifest.json" if folder else MANIFEST
    return json.loads(path.read_text())


def random_gpt_weights(hidden: int, layers: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random v2 GPT weights with the manifest's key layout at any size (normal(0, 0.02), unit norms/alphas)."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.02

    weights = {
        "bert_proj.weight": normal(hidden, 1024),
        "bert_proj.bias": torch.zeros(hidden),
        "ar_text_embedding.word_embeddings.weight": normal(732, hidden),
        "ar_text_position.alpha": torch.ones(1),
        "ar_audio_embedding.word_embeddings.weight": normal(1025, hidden),
        "ar_audio_position.alpha": torch.ones(1),
        "ar_predict_layer.weight": normal(1025, hidden),
    }
    for i in range(layers):
        p = f"h.layers.{i}."
        weights |= {
            p + "self_attn.in_proj_weight": normal(3 * hidden, hidden),
            p + "self_attn.in_proj_bias": torch.zeros(3 * hidden),
            p + "self_attn.out_proj.weight": normal(hidden, hidden),
            p + "self_attn.out_proj.bias": torch.zeros(hidden),
            p + "linear1.weight": normal(4 * hidden, hidden),
            p + "linear1.bias": torch.zeros(4 * hidden),
            p + "linear2.weight": normal(hidden, 4 * hidden),
            p + "linear2.bias": torch.zeros(hidden),
            p + "norm1.weight": torch.ones(hidden),
            p + "norm1.bias": torch.zeros(hidden),
            p + "norm2.weight": torch.ones(hidden),
            p + "norm2.bias": torch.zeros(hidden),
        }
    return weights


def _time_gpt(weights, heads: int, phones: int, prompt_len: int, tokens: int, first_chunk: int) -> dict[str, float]:
    """Prefill + exactly ``tokens`` decode steps with v2 sampling (EOS ignored so the length is fixed)."""
    from gpt_sovits_train.interchange.t2s_decode import CachedT2S

    decoder = CachedT2S(weights, heads, max_tokens=phones + prompt_len + tokens + 1)
    prefill, step = decoder.prefill, decoder.step
    phoneme_ids = torch.randint(0, 732, (1, phones))
    bert = torch.zeros(1, 1024, phones)
    prompt = torch.randint(0, 1024, (1, prompt_len))
    with torch.inference_mode():
        start = time.perf_counter()
        logits, keys, values = prefill(phoneme_ids, bert, prompt)
        history = prompt[0].clone()
        first_chunk_time = float("nan")
        for index in range(tokens):
            token = sample_next(logits[0][:1024], history, 15, 1.0, 1.0, 1.35)
            history = torch.cat([history, token.view(1)])
            if index + 1 == first_chunk:
                first_chunk_time = time.perf_counter() - start
            logits, keys, values = step(token.view(1, 1), torch.tensor([prompt_len + index]), keys, values)
        total = time.perf_counter() - start
    return {"seconds": total, "tokens_per_s": tokens / total, "first_chunk_tokens_s": first_chunk_time}


def _build_sovits(quick: bool) -> torch.nn.Module | None:
    """The v2 generator at full size (or the tiny fixture size when quick), if the models package provides it."""
    try:
        from gpt_sovits_train.inference.loading import sovits_network_from_v2_config
    except ImportError:
        return None
    config = dict(_manifest()["models"]["sovits_generator_v2"]["config"])
    if quick:
        config["model"] = {
            **config["model"],
            "inter_channels": 32,
            "filter_channels": 256,
            "n_layers": 2,
            "upsample_initial_channel": 64,
        }
    try:
        return sovits_network_from_v2_config(config).eval()
    except ImportError:
        return None


def run_e2e_rtf(quick: bool = False) -> dict[str, Any]:
    """RTF per stage and first-chunk latency for a 10 s utterance (2 s when quick, with a tiny GPT)."""
    from gpt_sovits_train.text.frontend import phonemize

    torch.manual_seed(0)
    tokens = 50 if quick else 250
    audio_seconds = tokens / SEMANTIC_HZ
    hidden, layers, heads = (64, 2, 4) if quick else (512, 24, 16)
    chunk = 12 if quick else 24
    figures: dict[str, Any] = {
        "audio_seconds": audio_seconds,
        "gpt_size": f"{layers}x{hidden}",
        "threads": torch.get_num_threads(),
    }

    phonemize(TEXT, "en")  # warm-up: dictionaries load on first use (model loading is excluded)
    start = time.perf_counter()
    phonemize(TEXT, "en")
    frontend = time.perf_counter() - start

    gpt = _time_gpt(random_gpt_weights(hidden, layers), heads, 60, 75, tokens, chunk)
    figures["gpt_tokens_per_s"] = round(gpt["tokens_per_s"], 2)
    stages = {"frontend": frontend, "gpt": gpt["seconds"]}

    sovits = _build_sovits(quick)
    if sovits is None:
        figures["sovits"] = "unavailable: gpt_sovits_train.models.sovits not importable"
    else:
        codes = torch.randint(0, 1024, (1, 1, tokens))
        text = torch.randint(1, 732, (1, 60))
        refer = torch.rand(1, 1025, 150 if not quick else 30)
        with torch.inference_mode():
            start = time.perf_counter()
            sovits.decode(codes, text, refer, noise_scale=0.5, speed=1.0)
            stages["sovits"] = time.perf_counter() - start
            start = time.perf_counter()
            sovits.decode(codes[..., :chunk], text, refer, noise_scale=0.5, speed=1.0)
            first_decode = time.perf_counter() - start
        figures["first_chunk_latency_s"] = round(gpt["first_chunk_tokens_s"] + first_decode + frontend, 4)
    total = sum(stages.values())
    figures["stage_rtf"] = {k: round(v / audio_seconds, 4) for k, v in stages.items()}
    figures["rtf"] = round(total / audio_seconds, 4) if "sovits" in stages else None
    figures["gpt_only_rtf"] = round((stages["gpt"] + frontend) / audio_seconds, 4)
    figures["target_rtf"] = 0.5
    figures["reference_rtf"] = 1.1
    return figures


if __name__ == "__main__":
    print(json.dumps(run_e2e_rtf(quick=False), indent=1))

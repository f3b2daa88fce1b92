"""Measure the reference GPT-SoVITS v2 on the PERFORMANCE.md workloads, to compare with ours in the same session.

PERFORMANCE.md targets are ratios to the reference *on the same machine in the same run*: shared machines move
absolute figures by 2x between days. This harness runs the public reference (RVC-Boss/GPT-SoVITS, commit 48b1a01,
checked out OUTSIDE this repository; nothing of it is copied here) with random weights, on the same workloads as
``scripts/bench.py``; run both back to back and compare ratios.

    git clone https://github.com/RVC-Boss/GPT-SoVITS /tmp/GPT-SoVITS && git -C /tmp/GPT-SoVITS checkout 48b1a01
    python scripts/bench_reference.py --reference /tmp/GPT-SoVITS --only gpt_decode_b1
    python scripts/bench.py --only gpt_decode_b1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import torch

from gpt_sovits_train.benchmarks import peak_rss_mb

PHONEMES, PROMPT, NEW_TOKENS, VOCAB = 60, 75, 250, 1025


def _import_reference(root: Path) -> None:
    """Put the reference's package folder on sys.path; its SoVITS module imports f5_tts for v3 only."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.path.insert(0, str(root / "GPT_SoVITS"))
    if "f5_tts.model" not in sys.modules:
        f5_tts, f5_model = types.ModuleType("f5_tts"), types.ModuleType("f5_tts.model")
        f5_model.DiT = object  # only SynthesizerTrnV3 uses it
        sys.modules.update({"f5_tts": f5_tts, "f5_tts.model": f5_model})


def _reference_gpt(root: Path):
    import yaml
    from AR.models.t2s_model import Text2SemanticDecoder

    config = yaml.safe_load((root / "GPT_SoVITS/configs/s1longer-v2.yaml").read_text())
    torch.manual_seed(0)
    model = Text2SemanticDecoder(config, top_k=15).eval()
    # Same head plus a bias that rules EOS out, so every run decodes exactly NEW_TOKENS as the workload asks.
    head = torch.nn.Linear(model.ar_predict_layer.in_features, VOCAB)
    with torch.no_grad():
        head.weight.copy_(model.ar_predict_layer.weight)
        head.bias.zero_()
        head.bias[-1] = -1e9
    model.ar_predict_layer = head
    return model


def gpt_train(root: Path, scaled_adam: bool = False) -> dict:
    """The reference's training step as its ``training_step`` runs it (``forward_old``: summed cross-entropy, no
    DPO, which is v2's default), with the same optimizer work as ours (AdamW, gradient norm clipped to 1.0; or,
    ``scaled_adam``, its own ScaledAdam as its configure_optimizers builds it), at batch 4, 60 phonemes, 250
    semantic tokens."""
    model = _reference_gpt(root).train()
    if scaled_adam:
        from AR.modules.optim import ScaledAdam

        names = [[name for name, _ in model.named_parameters()]]
        optimizer = ScaledAdam(model.parameters(), lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0,
                               parameters_names=names, show_dominant_parameters=False, clipping_update_period=1000)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    batch, semantic = 4, NEW_TOKENS
    phonemes = torch.randint(1, 732, (batch, PHONEMES), generator=g)
    bert = torch.randn(batch, 1024, PHONEMES, generator=g)
    tokens = torch.randint(0, 1024, (batch, semantic), generator=g)
    phoneme_lens, token_lens = torch.full((batch,), PHONEMES), torch.full((batch,), semantic)
    times = []
    for _ in range(4):  # the first step (allocator warm-up, AdamW state creation) is not timed
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.forward_old(phonemes, phoneme_lens, tokens, token_lens, bert)
        loss.backward()
        if not scaled_adam:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - start)
    per_step = sum(times[1:]) / len(times[1:])
    return {
        "s_per_step": round(per_step, 3),
        "semantic_tokens_per_s": round(batch * semantic / per_step, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def gpt_decode(root: Path, batch: int) -> dict:
    model = _reference_gpt(root)
    g = torch.Generator().manual_seed(1)
    phonemes = torch.randint(1, 732, (batch, PHONEMES), generator=g)
    bert = torch.randn(batch, 1024, PHONEMES, generator=g)
    prompt = torch.randint(0, 1024, (batch, PROMPT), generator=g)
    lengths = torch.full((batch,), PHONEMES)
    settings = dict(top_k=15, top_p=1.0, early_stop_num=NEW_TOKENS - 1, temperature=1.0, repetition_penalty=1.35)
    with torch.no_grad():
        start = time.perf_counter()
        if batch == 1:
            tokens, _ = list(model.infer_panel_naive(phonemes, lengths, prompt, bert, **settings))[-1]
        else:
            rows, _ = model.infer_panel_batch_infer(list(phonemes), lengths, prompt, list(bert), **settings)
            tokens = rows[0].unsqueeze(0)
        seconds = time.perf_counter() - start
    return {"batch": batch, "seconds": round(seconds, 3), "tokens_per_s": round(batch * NEW_TOKENS / seconds, 1),
            "row0_length_with_prompt": int(tokens.shape[-1])}


def sovits_decode(root: Path) -> dict:
    hps = json.loads((root / "GPT_SoVITS/configs/s2.json").read_text())
    net = _reference_sovits(hps).eval()
    codes = torch.randint(0, 1024, (1, 1, NEW_TOKENS))
    text = torch.randint(1, 732, (1, PHONEMES))
    refer = torch.randn(1, 1025, 150).abs()  # 3 s at 50 frames/s
    with torch.no_grad():
        net.decode(codes[..., :20], text[:, :10], refer)  # warm-up
        times = []
        for _ in range(2):
            start = time.perf_counter()
            net.decode(codes, text, refer, noise_scale=0.5)
            times.append(time.perf_counter() - start)
    audio_seconds = NEW_TOKENS / 25
    return {"rtf": round(min(times) / audio_seconds, 3), "rtf_all": [round(t / audio_seconds, 3) for t in times]}


def _reference_sovits(hps: dict):
    from module.models import SynthesizerTrn

    torch.manual_seed(0)
    return SynthesizerTrn(
        hps["data"]["filter_length"] // 2 + 1,
        hps["train"]["segment_size"] // hps["data"]["hop_length"],
        n_speakers=hps["data"]["n_speakers"],
        version="v2",
        **hps["model"],
    )


def sovits_train(root: Path) -> dict:
    """The reference's training step as its ``s2_train.py`` runs it in fp32 (mel of the whole spectrogram, then
    sliced; both networks, both AdamW steps, gradient norms taken), at the PERFORMANCE.md shapes."""
    from module import commons
    from module.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
    from module.mel_processing import mel_spectrogram_torch, spec_to_mel_torch
    from module.models import MultiPeriodDiscriminator

    if not torch.distributed.is_initialized():  # s2_train.py always runs in a process group; its quantizer asks
        torch.distributed.init_process_group("gloo", init_method="tcp://127.0.0.1:29533", rank=0, world_size=1)
    hps = json.loads((root / "GPT_SoVITS/configs/s2.json").read_text())
    data, train = hps["data"], hps["train"]
    net_g = _reference_sovits(hps).train()
    net_d = MultiPeriodDiscriminator(hps["model"]["use_spectral_norm"], version="v2").train()
    betas, eps = tuple(train["betas"]), train["eps"]
    optim_g = torch.optim.AdamW([p for p in net_g.parameters() if p.requires_grad], 1e-4, betas=betas, eps=eps)
    optim_d = torch.optim.AdamW(net_d.parameters(), 1e-4, betas=betas, eps=eps)
    frames, hop, segment = 100, data["hop_length"], train["segment_size"]
    ssl, spec = torch.randn(2, 768, frames), torch.rand(2, 1025, frames)
    wav = torch.randn(2, 1, frames * hop) * 0.1
    lengths, text, text_lengths = torch.full((2,), frames), torch.randint(1, 732, (2, 40)), torch.full((2,), 40)
    mel_args = (data["filter_length"], data["n_mel_channels"], data["sampling_rate"])

    def step() -> None:
        y_hat, kl_ssl, ids_slice, _, z_mask, (_, z_p, m_p, logs_p, _, logs_q), _ = net_g(
            ssl, spec, lengths, text, text_lengths
        )
        mel = spec_to_mel_torch(spec, *mel_args, data["mel_fmin"], data["mel_fmax"])
        y_mel = commons.slice_segments(mel, ids_slice, segment // hop)
        y_hat_mel = mel_spectrogram_torch(
            y_hat.squeeze(1), *mel_args, hop, data["win_length"], data["mel_fmin"], data["mel_fmax"]
        )
        y = commons.slice_segments(wav, ids_slice * hop, segment)
        real, fake, _, _ = net_d(y, y_hat.detach())
        loss_disc, _, _ = discriminator_loss(real, fake)
        optim_d.zero_grad()
        loss_disc.backward()
        commons.clip_grad_value_(net_d.parameters(), None)
        optim_d.step()
        _, fake, fmap_r, fmap_g = net_d(y, y_hat)
        loss_mel = torch.nn.functional.l1_loss(y_mel, y_hat_mel) * train["c_mel"]
        loss_kl = kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * train["c_kl"]
        loss_gen, _ = generator_loss(fake)
        loss = loss_gen + feature_loss(fmap_r, fmap_g) + loss_mel + kl_ssl + loss_kl
        optim_g.zero_grad()
        loss.backward()
        commons.clip_grad_value_(net_g.parameters(), None)
        optim_g.step()

    step()  # warm-up: allocator, AdamW state
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    per_step = sum(times) / len(times)
    return {
        "steps_per_s": round(1 / per_step, 3),
        "s_per_step": round(per_step, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


WORKLOADS = {
    "gpt_train": gpt_train,
    "gpt_train_scaled_adam": lambda root: gpt_train(root, scaled_adam=True),
    "gpt_decode_b1": lambda root: gpt_decode(root, 1),
    "gpt_decode_b8": lambda root: gpt_decode(root, 8),
    "sovits_decode": sovits_decode,
    "sovits_train": sovits_train,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="a GPT-SoVITS checkout (commit 48b1a01)")
    parser.add_argument("--only", action="append", default=[], help="workloads whose name contains this")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.reference / "GPT_SoVITS/AR/models/t2s_model.py").is_file():
        parser.error(f"{args.reference} is not a GPT-SoVITS checkout (no GPT_SoVITS/AR/models/t2s_model.py)")
    torch.set_num_threads(args.threads)
    _import_reference(args.reference)
    chosen = [name for name in WORKLOADS if not args.only or any(part in name for part in args.only)]
    print(json.dumps({f"reference_{name}": WORKLOADS[name](args.reference) for name in chosen}, indent=2))


if __name__ == "__main__":
    main()

"""Make a set of GPT-SoVITS v2 parity fixtures (``tiny_t2s.*``, ``tiny_sovits.*``) by running the public reference.

The parity tests compare our models with numbers the reference computed. ``tests/fixtures/reference/`` holds the
vendored set; this script makes another one, of any size and seed, in the same format (names, JSON layout,
``calls``, ``recommended_tolerances``), so that ``GST_REFERENCE_DIR=<out> pytest ...`` proves the tests read every
size from the fixture instead of assuming the vendored one. It runs the reference RVC-Boss/GPT-SoVITS (commit
48b1a01) checked out OUTSIDE this repository; nothing of it is copied here — it is imported from ``--reference``.

    python scripts/make_reference_fixtures.py --reference /work/GPT-SoVITS --out /tmp/ref_other \
        --seed 11 --t2s-hidden 32 --t2s-heads 8 --t2s-layers 4 --new-tokens 14 \
        --sovits-inter 16 --sovits-heads 4 --sovits-layers 4 --segment-frames 8

(tests/fixtures/reference/README.md has the full command of the checked second set and the tests to run on it.)

The recipe (tests/fixtures/reference/README.md): seed, reference constructor with the tiny config, constant-initialised
tensors perturbed, SoVITS codebook set, every weight rounded to float16, ``eval()``, then the recorded calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gpt_sovits_train.interchange.export import V2_SOVITS_GENERATOR

EOS = 1024
HOP, N_FFT, SR, N_MELS = 640, 2048, 32000, 128


def _import_reference(root: Path) -> None:
    """Put the reference's package folder on sys.path; its SoVITS module imports f5_tts for v3 only."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.path.insert(0, str(root / "GPT_SoVITS"))
    if "f5_tts.model" not in sys.modules:
        f5_tts, f5_model = types.ModuleType("f5_tts"), types.ModuleType("f5_tts.model")
        f5_model.DiT = object
        sys.modules.update({"f5_tts": f5_tts, "f5_tts.model": f5_model})


def _commit(root: Path) -> dict:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "date": git("log", "-1", "--format=%ad"),
        "subject": git("log", "-1", "--format=%s"),
    }


def _perturb_and_round(model: torch.nn.Module, seed: int) -> list[str]:
    """Constant-initialised float tensors get noise (zeros -> N(0, 0.05^2), c -> c(1 + 0.1 N)) so a wrong or missing
    tensor changes the outputs; then every float tensor is rounded to float16 (stored as such)."""
    g = torch.Generator().manual_seed(seed + 1)
    perturbed = []
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point() or value.numel() < 1:
                continue
            if key.startswith("quantizer."):
                continue
            flat = value.flatten()
            if bool((flat == flat[0]).all()):
                noise = torch.randn(value.shape, generator=g)
                value.copy_(noise * 0.05 if float(flat[0]) == 0.0 else value * (1 + 0.1 * noise))
                perturbed.append(key)
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())
    return perturbed


def _tolerance(dev: float, exact: bool):
    if exact:
        return "exact"
    atol = 1e-6
    while atol < 100 * dev:
        atol *= 10
    return {"atol": float(f"{atol:.0e}"), "rtol": 1e-4, "observed_max_abs_dev": dev}


def _tolerances(outputs: dict[str, torch.Tensor], recompute64) -> dict:
    """Per output: 100x the float64-vs-float32 deviation rounded up to a power of ten (at least 1e-6)."""
    again = recompute64()
    result = {}
    for name, value in outputs.items():
        if not value.is_floating_point():
            result[name] = _tolerance(0.0, True)
            continue
        dev = float((again[name].double() - value.double()).abs().max()) if value.numel() else 0.0
        result[name] = _tolerance(dev, False)
        result[name]["ref_max_abs"] = float(value.abs().max()) if value.numel() else 0.0
    return result


def _spec(tensors: dict[str, torch.Tensor]) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in tensors.items()}


def _write(out: Path, name: str, meta: dict, weights: dict, inputs: dict, outputs: dict) -> None:
    tensors = {f"weight.{k}": v.half() if v.is_floating_point() else v for k, v in weights.items()}
    tensors.update({k: v.detach().clone().contiguous() for k, v in {**inputs, **outputs}.items()})
    save_file(tensors, str(out / f"{name}.safetensors"))
    meta.update(weights=_spec(weights), inputs=_spec(inputs), outputs=_spec(outputs))
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1))


# --- GPT stage ------------------------------------------------------------------------------------------------
def _t2s_model(config: dict, seed: int):
    from AR.models.t2s_model import Text2SemanticDecoder

    torch.manual_seed(seed)
    model = Text2SemanticDecoder(config=config, top_k=3)
    perturbed = _perturb_and_round(model, seed)
    return model.eval(), perturbed


def _t2s_inputs(g: torch.Generator, phonemes: int, prompt: int, target: int) -> dict[str, torch.Tensor]:
    x = torch.randint(1, 732, (1, phonemes), generator=g)
    inputs = {
        "input.tf.phoneme_ids": x,
        "input.tf.phoneme_len": torch.tensor([phonemes]),
        "input.tf.bert_feature": torch.randn(1, 1024, phonemes, generator=g),
        "input.tf.prompt_semantic": torch.randint(0, 1024, (1, prompt), generator=g),
        "input.tf.target_semantic": torch.randint(0, 1024, (1, target), generator=g),
    }
    x_lens, y_lens = [phonemes, phonemes - 3], [prompt + target - 2, prompt + target - 7]
    batch_x = torch.zeros(2, phonemes, dtype=torch.long)
    bert = torch.zeros(2, 1024, phonemes)
    batch_y = torch.full((2, max(y_lens)), EOS, dtype=torch.long)
    for i, (xl, yl) in enumerate(zip(x_lens, y_lens)):
        batch_x[i, :xl] = torch.randint(1, 732, (xl,), generator=g)
        bert[i, :, :xl] = torch.randn(1024, xl, generator=g)
        batch_y[i, :yl] = torch.randint(0, 1024, (yl,), generator=g)
    inputs.update(
        {
            "input.batch.phoneme_ids": batch_x,
            "input.batch.phoneme_ids_len": torch.tensor(x_lens),
            "input.batch.semantic_ids": batch_y,
            "input.batch.semantic_ids_len": torch.tensor(y_lens),
            "input.batch.bert_feature": bert,
        }
    )
    return inputs


def _greedy(model, inputs: dict, early_stop: int, penalty: float) -> tuple[dict, float]:
    """``infer_panel`` greedy; the raw step logits are read by a forward hook on ``ar_predict_layer``."""
    steps: list[torch.Tensor] = []
    hook = model.ar_predict_layer.register_forward_hook(lambda m, a, out: steps.append(out.detach().clone()))
    try:
        torch.manual_seed(4)
        with torch.no_grad():
            y, idx = model.infer_panel(
                inputs["input.tf.phoneme_ids"],
                inputs["input.tf.phoneme_len"],
                inputs["input.tf.prompt_semantic"],
                inputs["input.tf.bert_feature"],
                top_k=1,
                top_p=1,
                early_stop_num=early_stop,
                temperature=1.0,
                repetition_penalty=penalty,
            )
    finally:
        hook.remove()
    prompt = inputs["input.tf.prompt_semantic"].shape[1]
    logits = torch.cat([s.reshape(1, -1) for s in steps])
    top2 = logits[:, :-1].topk(2, dim=-1).values  # EOS is masked for the first steps; margins over the rest
    margin = float((top2[:, 0] - top2[:, 1]).min())
    return {"y": y, "idx": torch.tensor([int(idx)]), "new_ids": y[:, prompt:], "step_logits_raw": logits}, margin


def make_t2s(args, out: Path) -> None:
    from AR.models.utils import dpo_loss, get_batch_logps, make_reject_y

    config = {
        "train": {"seed": args.seed, "if_dpo": False},
        "data": {"max_sec": 54, "pad_val": EOS},
        "model": {
            "vocab_size": 1025,
            "phoneme_vocab_size": 732,
            "embedding_dim": args.t2s_hidden,
            "hidden_dim": args.t2s_hidden,
            "head": args.t2s_heads,
            "linear_units": 4 * args.t2s_hidden,
            "n_layer": args.t2s_layers,
            "dropout": 0,
            "EOS": EOS,
            "random_bert": 0,
        },
        "inference": {"top_k": 1},
    }
    model, perturbed = _t2s_model(config, args.seed)
    early_stop = args.new_tokens - 1
    for k in range(500):  # inputs whose two greedy decodes are long, differ and have clear margins
        input_seed = args.seed + 2 + 1000 * k
        inputs = _t2s_inputs(torch.Generator().manual_seed(input_seed), args.phonemes, args.prompt, args.target)
        plain, m1 = _greedy(model, inputs, early_stop, 1.0)
        rp, m2 = _greedy(model, inputs, early_stop, 1.35)
        if (
            plain["new_ids"].shape[1] == args.new_tokens == rp["new_ids"].shape[1]
            and not torch.equal(plain["new_ids"], rp["new_ids"])
            and min(m1, m2) >= 0.02
        ):
            break
    else:
        raise SystemExit("no input draw gave two distinct full-length greedy decodes; change --seed")

    def run(m) -> dict[str, torch.Tensor]:
        t = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()} if m is not model else inputs
        o: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            x, xl, bert = t["input.tf.phoneme_ids"], t["input.tf.phoneme_len"], t["input.tf.bert_feature"]
            y = torch.cat([t["input.tf.prompt_semantic"], t["input.tf.target_semantic"]], 1)
            xy_pos, mask, targets = m.make_input_data(x, xl, y, torch.tensor([y.shape[1]]), bert)
            dec, _ = m.h((xy_pos, None), mask=mask)
            o["output.tf.logits"] = m.ar_predict_layer(dec[:, x.shape[1] - 1 :]).float()
            o["output.tf.targets"] = targets
            o["output.tf.loss_ce_sum"] = m.forward_old(x, xl, y, torch.tensor([y.shape[1]]), bert)[0].float().view(1)
            b = [
                t[f"input.batch.{n}"]
                for n in ("phoneme_ids", "phoneme_ids_len", "semantic_ids", "semantic_ids_len", "bert_feature")
            ]
            xy_pos, mask, targets = m.make_input_data(*b)
            dec, _ = m.h((xy_pos, None), mask=mask)
            logits = m.ar_predict_layer(dec[:, b[1].max() - 1 :])
            o["output.batch.logits"], o["output.batch.targets"] = logits.float(), targets
            loss, acc = m.forward_old(*b)
            o["output.batch.loss_forward_old"] = loss.float().view(1)
            o["output.batch.acc_forward_old"] = torch.tensor([float(acc)])
            torch.manual_seed(3)
            reject_y, reject_lens = make_reject_y(b[2], b[3])
            o["output.dpo.reject_y"], o["output.dpo.reject_y_lens"] = reject_y, reject_lens
            rpos, rmask, rtargets = m.make_input_data(b[0], b[1], reject_y, reject_lens, b[4])
            rdec, _ = m.h((rpos, None), mask=rmask)
            rlogits = m.ar_predict_layer(rdec[:, b[1].max() - 1 :])
            o["output.dpo.reject_logits"], o["output.dpo.reject_targets"] = rlogits.float(), rtargets
            ce = F.cross_entropy(logits.permute(0, 2, 1), targets, reduction="sum")
            chosen, rejected = get_batch_logps(logits, rlogits, targets, rtargets)
            dpo, _, _ = dpo_loss(chosen, rejected, 0, 0, 0.2, reference_free=True)
            o["output.dpo.loss"] = (ce + dpo).float().view(1)
            o["output.dpo.loss_ce_part"], o["output.dpo.loss_dpo_part"] = ce.float().view(1), dpo.float().view(1)
            o["output.dpo.chosen_logps"], o["output.dpo.rejected_logps"] = chosen.float(), rejected.float()
            torch.manual_seed(3)
            full_loss, full_acc = m.forward(*b)
            o["output.dpo.acc"] = torch.tensor([float(full_acc)])
            if m is model:
                observed["dpo_loss_recomputed_absdiff"] = float((full_loss - ce - dpo).abs())
        for name, penalty in (("greedy", 1.0), ("greedy_rp135", 1.35)):
            if m is model:
                result = {"greedy": plain, "greedy_rp135": rp}[name]
            else:
                result, _ = _greedy(m, t, early_stop, penalty)
            o.update({f"output.{name}.{k}": v.float() if v.is_floating_point() else v for k, v in result.items()})
        return o

    observed: dict = {
        "input_seed": input_seed,
        "greedy_min_top1_top2_margin": m1,
        "greedy_rp135_min_top1_top2_margin": m2,
        "greedy_n_new": args.new_tokens,
        "greedy_idx": int(plain["idx"]),
        "greedy_rp135_n_new": args.new_tokens,
        "greedy_rp135_idx": int(rp["idx"]),
    }
    outputs = run(model)
    model64 = _t2s_model(config, args.seed)[0]
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    tolerances = _tolerances(outputs, lambda: run(model64))
    meta = {
        "reference": _commit(args.reference),
        "model_class": "GPT_SoVITS/AR/models/t2s_model.py:Text2SemanticDecoder",
        "construction": "torch.manual_seed(seed); Text2SemanticDecoder(config=config, top_k=3); constant-initialised "
        "tensors perturbed; all weights rounded to float16; model.eval(); float32 CPU compute",
        "seed": args.seed,
        "config": config,
        "perturbed_constant_init_keys": perturbed,
        "input_generator_seed": input_seed,
        "calls": {
            "teacher_forced": "as the vendored fixture (tests/fixtures/reference/tiny_t2s.json)",
            "greedy_decode": f"torch.manual_seed(4); y, idx = model.infer_panel(input.tf.phoneme_ids, "
            f"input.tf.phoneme_len, input.tf.prompt_semantic, input.tf.bert_feature, top_k=1, top_p=1, "
            f"early_stop_num={early_stop}, temperature=1.0, repetition_penalty=1.0)",
            "greedy_decode_rp135": "same as greedy_decode but repetition_penalty=1.35",
        },
        "observed": observed,
        "recommended_tolerances": tolerances,
    }
    _write(out, "tiny_t2s", meta, model.state_dict(), inputs, outputs)


# --- SoVITS stage ---------------------------------------------------------------------------------------------
def _sovits_config(args) -> dict:
    return {
        "train": {
            "seed": args.seed,
            "segment_size": args.segment_frames * HOP,
            "c_mel": 45,
            "c_kl": 1.0,
            "fp16_run": False,
        },
        "data": {
            "max_wav_value": 32768.0,
            "sampling_rate": SR,
            "filter_length": N_FFT,
            "hop_length": HOP,
            "win_length": N_FFT,
            "n_mel_channels": N_MELS,
            "mel_fmin": 0.0,
            "mel_fmax": None,
            "add_blank": True,
            "n_speakers": 300,
            "cleaned_text": True,
        },
        "model": {  # v2's generator kwargs (interchange/export.py) with the tiny sizes of this fixture
            **V2_SOVITS_GENERATOR,
            "inter_channels": args.sovits_inter,
            "filter_channels": args.sovits_filter,
            "n_heads": args.sovits_heads,
            "n_layers": args.sovits_layers,
            "upsample_initial_channel": args.sovits_upsample,
            "semantic_frame_rate": "25hz",
            "freeze_quantizer": True,
            "version": "v2",
        },
    }


def _sovits_model(config: dict, seed: int):
    from module.models import SynthesizerTrn

    torch.manual_seed(seed)
    model = SynthesizerTrn(
        config["data"]["filter_length"] // 2 + 1,
        config["train"]["segment_size"] // HOP,
        n_speakers=config["data"]["n_speakers"],
        **config["model"],
    )
    g = torch.Generator().manual_seed(seed + 5)
    with torch.no_grad():
        codebook = model.quantizer.vq.layers[0]._codebook
        codebook.embed.copy_(torch.randn(codebook.embed.shape, generator=g) * 0.5)
        codebook.embed_avg.copy_(codebook.embed)
        codebook.cluster_size.copy_(torch.rand(codebook.cluster_size.shape, generator=g) * 10)
        codebook.inited.fill_(1)
    perturbed = _perturb_and_round(model, seed)
    return model.eval(), perturbed


def _waveform(g: torch.Generator, samples: int) -> torch.Tensor:
    """A voiced-like synthetic waveform: a few harmonics with a slow envelope, plus a little noise."""
    t = torch.arange(samples) / SR
    f0 = 110 + 80 * torch.rand(1, generator=g)
    wav = sum(
        torch.sin(2 * torch.pi * f0 * (k + 1) * t + torch.rand(1, generator=g) * 6.28) / (k + 1) for k in range(6)
    )
    wav = wav * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t)) * 0.1
    return (wav + 0.003 * torch.randn(samples, generator=g)).float()


def make_sovits(args, out: Path) -> None:
    from module import commons, losses
    from module.mel_processing import mel_spectrogram_torch, spec_to_mel_torch, spectrogram_torch

    config = _sovits_config(args)
    model, perturbed = _sovits_model(config, args.seed)
    seg = args.segment_frames
    g = torch.Generator().manual_seed(args.seed + 2)
    frames = seg * 2  # the training batch: B=2, T = 2 x segment (row 2 is 4 frames shorter)
    lengths = [frames, frames - 4]
    text_lens = [args.text_len, args.text_len - 3]
    wav = torch.zeros(2, 1, frames * HOP)
    spec = torch.zeros(2, N_FFT // 2 + 1, frames)
    ssl = torch.zeros(2, 768, frames)
    text = torch.zeros(2, args.text_len, dtype=torch.long)
    for i, (n, tl) in enumerate(zip(lengths, text_lens)):
        wav[i, 0, : n * HOP] = _waveform(g, n * HOP)
        spec[i, :, :n] = spectrogram_torch(wav[i, :, : n * HOP], N_FFT, SR, HOP, N_FFT, center=False)[0, :, :n]
        ssl[i, :, :n] = torch.randn(768, n, generator=g)
        text[i, :tl] = torch.randint(1, 732, (tl,), generator=g)
    inputs = {
        "input.latent.ssl": torch.randn(1, 768, args.ssl_frames, generator=g),
        "input.decode.ref_wav": _waveform(g, args.ref_frames * HOP).unsqueeze(0),
        "input.decode.text": torch.randint(1, 732, (1, args.text_len + 2), generator=g),
        "input.train.ssl": ssl,
        "input.train.spec": spec,
        "input.train.spec_lengths": torch.tensor(lengths),
        "input.train.wav": wav,
        "input.train.text": text,
        "input.train.text_lengths": torch.tensor(text_lens),
    }
    for i, width in enumerate((37, 51)):
        inputs[f"input.lossmath.d_real_{i}"] = torch.rand(2, width, generator=g) * 1.5
        inputs[f"input.lossmath.d_fake_{i}"] = torch.rand(2, width, generator=g) * 1.5
    for i in range(2):
        for j, shape in enumerate(((2, 16, 40), (2, 64, 10))):
            inputs[f"input.lossmath.fmap_real_{i}_{j}"] = torch.randn(shape, generator=g)
            inputs[f"input.lossmath.fmap_fake_{i}_{j}"] = torch.randn(shape, generator=g)

    draws: dict[str, torch.Tensor] = {}

    def run(m, t: dict[str, torch.Tensor], record: bool) -> dict[str, torch.Tensor]:
        dtype = next(m.parameters()).dtype
        t = {k: v.to(dtype) if v.is_floating_point() else v for k, v in t.items()}
        o: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            refer = spectrogram_torch(t["input.decode.ref_wav"], N_FFT, SR, HOP, N_FFT, center=False)
            o["output.decode.refer_spec"] = refer
            o["output.mel.spec_to_mel_of_refer"] = spec_to_mel_torch(refer, N_FFT, N_MELS, SR, 0.0, None)
            o["output.mel.mel_spectrogram_of_ref_wav"] = mel_spectrogram_torch(
                t["input.decode.ref_wav"], N_FFT, N_MELS, SR, HOP, N_FFT, 0.0, None
            )
            codes = m.extract_latent(t["input.latent.ssl"])
            o["output.latent.codes"] = codes
            o["output.latent.ssl_proj"] = m.ssl_proj(t["input.latent.ssl"])
            seen: dict[str, torch.Tensor] = {}
            hooks = [
                m.ref_enc.register_forward_hook(lambda mod, a, r: seen.setdefault("ge", r)),
                m.enc_p.register_forward_hook(lambda mod, a, r: seen.update(m_p=r[1], logs_p=r[2])),
                m.flow.register_forward_hook(lambda mod, a, r: seen.setdefault("z", r)),
            ]
            torch.manual_seed(3)
            o["output.decode.wav"] = m.decode(codes, t["input.decode.text"], refer, noise_scale=0.0, speed=1)
            for h in hooks:
                h.remove()
            o.update({f"output.decode.{k}": seen[k] for k in ("ge", "m_p", "logs_p", "z")})
            # training forward: record the two random draws (or replay them for the float64 recomputation)
            real_randn_like, real_rand = torch.randn_like, torch.rand

            def randn_like(x, *a, **k):
                if record:
                    draws["input.train.posterior_noise"] = real_randn_like(x, *a, **k)
                return draws["input.train.posterior_noise"].to(x.dtype)

            def rand(*a, **k):
                if record:
                    draws["input.train.slice_uniform"] = real_rand(*a, **k)
                return draws["input.train.slice_uniform"].clone()

            torch.manual_seed(4)
            torch.randn_like, torch.rand = randn_like, rand
            try:
                y_hat, kl_ssl, ids_slice, y_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q), quantized = m(
                    t["input.train.ssl"],
                    t["input.train.spec"],
                    t["input.train.spec_lengths"],
                    t["input.train.text"],
                    t["input.train.text_lengths"],
                )
            finally:
                torch.randn_like, torch.rand = real_randn_like, real_rand
            o.update(
                {
                    "output.train.y_hat": y_hat,
                    "output.train.kl_ssl": kl_ssl.reshape(1).to(dtype),
                    "output.train.ids_slice": ids_slice,
                    "output.train.y_mask": y_mask,
                    "output.train.z": z,
                    "output.train.z_p": z_p,
                    "output.train.m_p": m_p,
                    "output.train.logs_p": logs_p,
                    "output.train.m_q": m_q,
                    "output.train.logs_q": logs_q,
                    "output.train.quantized": quantized,
                }
            )
            mel = spec_to_mel_torch(t["input.train.spec"], N_FFT, N_MELS, SR, 0.0, None)
            y_mel = commons.slice_segments(mel, ids_slice, seg)
            y_hat_mel = mel_spectrogram_torch(y_hat.squeeze(1), N_FFT, N_MELS, SR, HOP, N_FFT, 0.0, None)
            o.update(
                {
                    "output.train.mel": mel,
                    "output.train.y_mel": y_mel,
                    "output.train.y_hat_mel": y_hat_mel,
                    "output.train.y_sliced": commons.slice_segments(t["input.train.wav"], ids_slice * HOP, seg * HOP),
                    "output.train.loss_mel": (F.l1_loss(y_mel, y_hat_mel) * 45).reshape(1),
                    "output.train.loss_kl": (losses.kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * 1.0).reshape(1),
                }
            )
            lm = {k.removeprefix("input.lossmath."): v for k, v in t.items() if k.startswith("input.lossmath.")}
            d_real, d_fake = [lm["d_real_0"], lm["d_real_1"]], [lm["d_fake_0"], lm["d_fake_1"]]
            total, r_losses, g_losses = losses.discriminator_loss(d_real, d_fake)
            o["output.lossmath.discriminator_loss"] = total.reshape(1)
            o["output.lossmath.discriminator_r_losses"] = torch.tensor(r_losses, dtype=dtype)
            o["output.lossmath.discriminator_g_losses"] = torch.tensor(g_losses, dtype=dtype)
            o["output.lossmath.generator_loss"] = losses.generator_loss(d_fake)[0].reshape(1)
            fmap = [[lm[f"fmap_{w}_{i}_{j}"] for j in range(2)] for w in ("real", "fake") for i in range(2)]
            o["output.lossmath.feature_loss"] = losses.feature_loss(fmap[:2], fmap[2:]).reshape(1)
        return {k: v.float() if v.is_floating_point() else v for k, v in o.items()}

    outputs = run(model, inputs, record=True)
    inputs.update({k: v.float() for k, v in draws.items()})
    model64 = _sovits_model(config, args.seed)[0]
    model64.load_state_dict(model.state_dict())
    tolerances = _tolerances(outputs, lambda: run(model64.double(), inputs, record=False))
    codes_margin = _code_margin(model, inputs["input.latent.ssl"])
    meta = {
        "reference": _commit(args.reference),
        "model_class": "GPT_SoVITS/module/models.py:SynthesizerTrn",
        "construction": "torch.manual_seed(seed); SynthesizerTrn(data.filter_length//2+1, "
        "train.segment_size//data.hop_length, n_speakers=data.n_speakers, **model); quantizer codebook set to "
        "randn*0.5 (embed=embed_avg) and inited=1; constant-initialised tensors perturbed; all weights rounded to "
        "float16; model.eval(); float32 CPU compute",
        "seed": args.seed,
        "config": config,
        "perturbed_constant_init_keys": perturbed,
        "calls": {
            "train_forward": f"torch.manual_seed(4); model(input.train.*) in eval mode; draws recorded as "
            f"input.train.posterior_noise and input.train.slice_uniform (ids_slice = long(u * "
            f"(spec_lengths - {seg} + 1)))",
            "other": "as the vendored fixture (tiny_sovits.json)",
        },
        "observed": {"latent_min_code_margin": codes_margin},
        "recommended_tolerances": tolerances,
    }
    _write(out, "tiny_sovits", meta, model.state_dict(), inputs, outputs)


def _code_margin(model, ssl: torch.Tensor) -> float:
    with torch.no_grad():
        x = model.ssl_proj(ssl).transpose(1, 2).reshape(-1, 768)
        embed = model.quantizer.vq.layers[0]._codebook.embed
        d = torch.cdist(x, embed).topk(2, largest=False).values
    return float((d[:, 1] - d[:, 0]).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference",
        type=Path,
        default=os.environ.get("GST_REFERENCE_SOURCE"),
        help="checkout of RVC-Boss/GPT-SoVITS at 48b1a01 (or env GST_REFERENCE_SOURCE)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", choices=("t2s", "sovits"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--t2s-hidden", type=int, default=64)
    parser.add_argument("--t2s-heads", type=int, default=4)
    parser.add_argument("--t2s-layers", type=int, default=3)
    parser.add_argument("--phonemes", type=int, default=12)
    parser.add_argument("--prompt", type=int, default=8)
    parser.add_argument("--target", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=20, help="greedy decode length (early_stop_num + 1)")
    parser.add_argument("--sovits-inter", type=int, default=32)
    parser.add_argument("--sovits-filter", type=int, default=256)
    parser.add_argument("--sovits-heads", type=int, default=2)
    parser.add_argument("--sovits-layers", type=int, default=2)
    parser.add_argument("--sovits-upsample", type=int, default=64)
    parser.add_argument("--segment-frames", type=int, default=12)
    parser.add_argument("--ssl-frames", type=int, default=20)
    parser.add_argument("--ref-frames", type=int, default=30)
    parser.add_argument("--text-len", type=int, default=10)
    args = parser.parse_args()
    if args.reference is None or not (args.reference / "GPT_SoVITS").is_dir():
        parser.error("--reference must point at a GPT-SoVITS checkout (folder holding GPT_SoVITS/)")
    torch.set_num_threads(2)
    _import_reference(args.reference)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "t2s"):
        make_t2s(args, args.out)
    if args.only in (None, "sovits"):
        make_sovits(args, args.out)
    print(f"fixtures written to {args.out}")


if __name__ == "__main__":
    main()

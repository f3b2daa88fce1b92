"""SoVITS benchmarks (PERFORMANCE.md): one training step (gen + disc) and decode real-time factor."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch

from gpt_sovits_train.audio.spectrogram import mel_spectrogram, spec_to_mel
from gpt_sovits_train.benchmarks import peak_rss_mb
from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator
from gpt_sovits_train.models.sovits.losses import (
    discriminator_loss,
    generator_gan_losses,
    kl_loss,
    mel_reconstruction_loss,
)
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator, slice_segments

TINY = dict(
    segment_size=8,
    inter_channels=16,
    filter_channels=64,
    n_layers=2,
    upsample_initial_channel=32,
    posterior_layers=4,
    flow_layers=2,
    n_flows=2,
)


def _models(quick: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = SoVITSGenerator(**(TINY if quick else {}))
        disc = MultiPeriodDiscriminator(periods=[2] if quick else [2, 3, 5, 7, 11])
    return net, disc


def sovits_train_step(
    quick: bool, device: torch.device | str = "cpu", autocast: torch.dtype | None = None
) -> Callable[[], None]:
    """A ready SoVITS training step at the ``sovits_train`` workload (batch 2, 2 s of audio, 40 phonemes; both
    optimizer steps), on ``device``, under ``autocast`` (bf16/fp16 mixed precision; fp16 gets a GradScaler).

    The step does what ``SoVITSModule.training_step`` does, through the same loss functions (generator GAN
    losses without discriminator weight grads, mel of the real segment only), minus Lightning's bookkeeping.
    """
    device = torch.device(device)
    torch.manual_seed(0)
    net, disc = _models(quick)
    net, disc = net.to(device), disc.to(device)
    frames = 20 if quick else 100
    opt_g = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-4, betas=(0.8, 0.99), eps=1e-9)
    opt_d = torch.optim.AdamW(disc.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    ssl, spec = torch.randn(2, 768, frames, device=device), torch.rand(2, 1025, frames, device=device)
    wav = torch.randn(2, 1, frames * 640, device=device) * 0.1
    lengths, text = torch.full((2,), frames, device=device), torch.randint(1, 732, (2, 40), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast == torch.float16)

    def mixed():
        return torch.autocast(device.type, dtype=autocast, enabled=autocast is not None)

    def step() -> None:
        with mixed():
            out = net(ssl, spec, lengths, text, torch.full((2,), 40, device=device))
            seg = net.segment_size
            y = slice_segments(wav, out.ids_slice * 640, seg * 640)
            y_mel = spec_to_mel(slice_segments(spec, out.ids_slice, seg))
            sr, sf, _, _ = disc(y, out.y_hat.detach())
            loss_d, _, _ = discriminator_loss(sr, sf)
        opt_d.zero_grad()
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        with mixed():
            loss_gen, loss_fm = generator_gan_losses(disc, y, out.y_hat)
            loss_g = (
                loss_gen
                + loss_fm
                + 45 * mel_reconstruction_loss(y_mel, mel_spectrogram(out.y_hat.float().squeeze(1)))
                + kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask)
            )
        opt_g.zero_grad()
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.update()

    return step


def run_sovits_train(quick: bool = False) -> dict:
    """Batch 2, 2 s of audio (100 frames), 40 phonemes, full v2 sizes, fp32, 2 threads; both optimizer steps."""
    torch.set_num_threads(2)
    step = sovits_train_step(quick)
    step()  # warm-up
    n = 1 if quick else 3
    start = time.perf_counter()
    for _ in range(n):
        step()
    per_step = (time.perf_counter() - start) / n
    return {"steps_per_s": 1 / per_step, "s_per_step": per_step, "peak_rss_mb": peak_rss_mb(), "quick": quick}


def run_sovits_decode(quick: bool = False) -> dict:
    """Decode 250 codes (10 s) with a 3 s reference and 60 phonemes at noise 0.5; real-time factor. The network
    is prepared as the synthesizer prepares it (weight norms folded, decoder convolutions prepacked on CPU)."""
    from gpt_sovits_train.inference.sovits_runtime import prepare_sovits_for_inference

    torch.set_num_threads(2)
    torch.manual_seed(0)
    net, _ = _models(quick)
    net = prepare_sovits_for_inference(net)
    n_codes = 25 if quick else 250
    codes = torch.randint(0, 1024, (1, 1, n_codes))
    text, refer = torch.randint(1, 732, (1, 60)), torch.rand(1, 1025, 150)
    net.decode(codes, text, refer)  # warm-up at full length: first-touch allocations are not decode time
    timings = []
    for _ in range(1 if quick else 3):
        start = time.perf_counter()
        wav = net.decode(codes, text, refer, noise_scale=0.5)
        timings.append(time.perf_counter() - start)
    seconds = wav.shape[-1] / 32000
    rtfs = sorted(t / seconds for t in timings)
    return {
        "rtf": rtfs[len(rtfs) // 2],  # median of the repeats
        "rtf_min": rtfs[0],
        "audio_s": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "prepared_for_inference": True,
        "quick": quick,
    }

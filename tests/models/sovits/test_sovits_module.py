"""SoVITSModule trains through a real lightning.Trainer: a tiny model overfits a few demo utterances."""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from gpt_sovits_train.audio.spectrogram import linear_spectrogram
from gpt_sovits_train.lit.sovits_module import SoVITSModule
from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator

FRAMES = 16
HOP = 640


DEMO = Path(__file__).resolve().parents[3] / "data" / "demo"


def _demo_excerpt(relative: str, frames: int) -> torch.Tensor:
    """``frames`` hops of real speech from the middle of a demo utterance (32 kHz mono)."""
    audio, rate = sf.read(DEMO / relative, dtype="float32")
    assert rate == 32000, f"demo corpus is 32 kHz, {relative} is {rate}"
    middle = len(audio) // 2
    return torch.from_numpy(audio[middle - frames * HOP // 2 : middle + frames * HOP // 2].copy())


class DemoUtterances(Dataset):
    """Excerpts of a few demo utterances in the SoVITS batch format (docs/design.md), random "SSL" features."""

    def __init__(self, files: tuple[str, ...] = ("ava/ava_000.flac", "bo/bo_000.flac")) -> None:
        gen = torch.Generator().manual_seed(0)
        self.items = []
        for name in files:
            wav = _demo_excerpt(name, FRAMES)
            spec = linear_spectrogram(wav.unsqueeze(0))[0, :, :FRAMES]
            self.items.append(
                {
                    "ssl": torch.randn(768, FRAMES, generator=gen),
                    "spec": spec,
                    "wav": wav.unsqueeze(0),
                    "text": torch.randint(1, 732, (6,), generator=gen),
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.items[idx]


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    batch["spec_lengths"] = torch.full((len(items),), FRAMES)
    batch["text_lengths"] = torch.full((len(items),), items[0]["text"].shape[0])
    return batch


def _tiny_module(upsample_initial_channel: int = 32, **kwargs) -> SoVITSModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = SoVITSGenerator(
            segment_size=8,
            inter_channels=16,
            filter_channels=64,
            n_layers=2,
            upsample_initial_channel=upsample_initial_channel,
            posterior_layers=4,
            flow_layers=2,
            n_flows=2,
        )
        disc = MultiPeriodDiscriminator(periods=[2, 3], max_channels=64)
    return SoVITSModule(net, disc, optimizer=partial(torch.optim.AdamW, lr=2e-3, betas=(0.8, 0.99), eps=1e-9), **kwargs)


class _MelHistory(L.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(trainer.callback_metrics["train/loss_mel"]))


def _fit(module: SoVITSModule, steps: int, tmp_path) -> list[float]:
    history = _MelHistory()
    trainer = L.Trainer(
        max_steps=steps,  # optimizer steps: both networks count
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[history],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(DemoUtterances(), batch_size=2, collate_fn=_collate))
    return history.values


@pytest.mark.slow
def test_tiny_model_overfits_mel_loss(tmp_path):
    """40 generator + 40 discriminator updates on two demo utterances drive mel L1 at least 40 % below its first
    value, on the reconstruction path (``c_adv=0``: mel x45 + KL + commitment; the discriminator still trains).

    Why not with the adversarial terms on: GAN steps amplify last-bit differences between CPU kernel paths, so the same
    80-step adversarial overfit that converges on an AVX2 CPU diverged on an AVX-512/AMX one (mel L1 2.27 -> 6.85).
    Without them the generator follows plain gradient descent on the reconstruction losses, where kernel-level
    differences stay at rounding level instead of being amplified by the discriminator's feedback."""
    torch.manual_seed(0)
    values = _fit(_tiny_module(upsample_initial_channel=128, grad_clip_norm=100.0, c_adv=0.0), 80, tmp_path)
    first = values[0]
    late = sorted(values[-5:])[2]  # median of the last five
    assert late <= 0.6 * first, f"mel L1 went {first:.3f} -> {late:.3f} (history {values})"


def test_bad_batch_and_freeze_group_are_rejected():
    module = _tiny_module()
    with pytest.raises(KeyError, match="SoVITS batch lacks"):
        module._check_batch({"ssl": torch.zeros(1)})
    with pytest.raises(ValueError, match="unknown freeze group"):
        _tiny_module(freeze=["decoder"])


def test_text_path_gets_lower_learning_rate():
    module = _tiny_module(text_low_lr_rate=0.4)
    opt_g, _ = module.configure_optimizers()
    assert opt_g.param_groups[1]["lr"] == pytest.approx(0.4 * opt_g.param_groups[0]["lr"])


TINY_SIZES = dict(
    segment_size=8,
    inter_channels=16,
    filter_channels=64,
    n_layers=2,
    upsample_initial_channel=32,
    posterior_layers=4,
    flow_layers=2,
    n_flows=2,
)


@pytest.mark.parametrize(
    ("options", "fresh_prefixes"),
    [
        ({"speaker_dim": 192}, ("spk_proj.",)),
        ({"decoder": "istft"}, ("dec.",)),
        ({"content_source": "encodec"}, ("content_emb.",)),
    ],
)
def test_v2_generator_weights_initialise_an_optioned_generator(tmp_path, options, fresh_prefixes):
    """A v2 s2G file (here: a tiny one in the v2 layout) fine-tunes a generator with an option on: everything the
    file holds and the option keeps is loaded; the parts the option adds keep their initialisation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = SoVITSGenerator(**TINY_SIZES)
        path = tmp_path / "s2G_tiny.pth"
        torch.save({"weight": source.state_dict(), "info": "tiny"}, path)
        target = SoVITSGenerator(**TINY_SIZES, **options)
        init = {k: v.clone() for k, v in target.state_dict().items()}
        module = SoVITSModule(
            target,
            MultiPeriodDiscriminator(periods=[2, 3]),
            optimizer=partial(torch.optim.AdamW, lr=1e-4),
            init_generator_from=str(path),
        )
    loaded = module.net.state_dict()
    source_state = source.state_dict()
    fresh = [k for k in loaded if k.startswith(fresh_prefixes)]
    assert fresh and all(torch.equal(loaded[k], init[k]) for k in fresh)
    shared = [k for k in loaded if k in source_state and not k.startswith(fresh_prefixes)]
    assert len(shared) > 100
    assert all(torch.equal(loaded[k], source_state[k]) for k in shared)


def _one_epoch(module: SoVITSModule, tmp_path, dataset: Dataset, batch_size: int, callbacks=()) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(dataset, batch_size=batch_size, collate_fn=_collate))
    return trainer


class _Poisoned(DemoUtterances):
    """The demo excerpts with NaN waveforms (the random training segment is cut from them): the discriminator loss
    and the generator's feature-matching term go NaN; the mel target comes from the (finite) spectrogram."""

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        item = dict(self.items[idx])
        item["wav"] = item["wav"].clone()
        item["wav"].fill_(float("nan"))
        return item


def test_nonfinite_losses_skip_both_updates_and_are_logged(tmp_path):
    torch.manual_seed(0)
    module = _tiny_module()
    start = {name: p.detach().clone() for name, p in module.named_parameters()}
    trainer = _one_epoch(module, tmp_path, _Poisoned(), batch_size=2)
    assert trainer.global_step == 0, module.nonfinite_terms  # no optimizer stepped
    for name, param in module.named_parameters():
        assert torch.equal(param.detach(), start[name]), f"{name} changed although its update was skipped"
    assert float(trainer.callback_metrics["train/skipped_nonfinite_disc"]) == 1.0
    assert float(trainer.callback_metrics["train/skipped_nonfinite_gen"]) == 1.0
    assert module.nonfinite_terms == ["loss_disc", "loss_fm"]  # what the NaN guard reports: the culprit terms


@pytest.mark.slow  # 28 s on 2 loaded cores
def test_gradient_clipping_bounds_each_update(tmp_path):
    """Plain SGD with lr 1 moves the weights by exactly the clipped gradient: its norm is ``grad_clip_norm``
    while the logged, unclipped norm is far larger."""
    clip = 1e-3
    torch.manual_seed(0)
    module = _tiny_module(grad_clip_norm=clip, text_low_lr_rate=1.0)
    module.optimizer_factory = partial(torch.optim.SGD, lr=1.0)
    start = {name: p.detach().clone() for name, p in module.named_parameters()}
    trainer = _one_epoch(module, tmp_path, DemoUtterances(), batch_size=2)
    assert trainer.global_step == 2  # one discriminator and one generator update
    for prefix, which in (("discriminator.", "disc"), ("net.", "gen")):
        moved = torch.linalg.vector_norm(
            torch.stack(
                [
                    torch.linalg.vector_norm(p.detach() - start[n])
                    for n, p in module.named_parameters()
                    if n.startswith(prefix)
                ]
            )
        )
        assert float(moved) == pytest.approx(clip, rel=1e-3), which
        assert float(trainer.callback_metrics[f"train/grad_norm_{which}"]) > 100 * clip


class _WeightsAfterFirstBatch(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.first = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


@pytest.mark.slow  # 20 s on 2 loaded cores
def test_accumulation_steps_once_per_two_batches(tmp_path):
    """accumulate_grad_batches=2 over two single-item batches: nothing moves after the first batch, both networks
    step once after the second (2 optimizer steps in all; stepping on every batch would make 4)."""
    torch.manual_seed(0)
    module, after_first = _tiny_module(accumulate_grad_batches=2), _WeightsAfterFirstBatch()
    start = {name: p.detach().clone() for name, p in module.named_parameters()}
    trainer = _one_epoch(module, tmp_path, DemoUtterances(), batch_size=1, callbacks=[after_first])
    assert trainer.global_step == 2
    assert all(torch.equal(after_first.first[n], start[n]) for n in start)
    moved = {n.split(".")[0] for n, p in module.named_parameters() if not torch.equal(p.detach(), start[n])}
    assert moved == {"net", "discriminator"}


def test_discriminator_initialises_from_a_v2_d_file(tmp_path):
    """``init_discriminator_from`` reads a v2 training ``D_*.pth`` (``{"model", "iteration", "optimizer",
    "learning_rate"}``, as s2_train.py saves it) into the discriminator; a file of another size is refused."""
    torch.manual_seed(1)
    source = MultiPeriodDiscriminator(periods=[2, 3], max_channels=64)
    optimizer = torch.optim.AdamW(source.parameters(), lr=1e-4)
    path = tmp_path / "D_233333333333.pth"
    torch.save(
        {"model": source.state_dict(), "iteration": 7, "optimizer": optimizer.state_dict(), "learning_rate": 1e-4},
        path,
    )
    torch.manual_seed(2)
    module = _tiny_module(init_discriminator_from=str(path))
    loaded, expected = module.discriminator.state_dict(), source.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    torch.manual_seed(2)
    assert not torch.equal(
        _tiny_module().discriminator.state_dict()[next(iter(expected))], next(iter(expected.values()))
    )
    other = tmp_path / "D_other.pth"
    torch.save({"model": MultiPeriodDiscriminator(periods=[2], max_channels=64).state_dict(), "iteration": 1}, other)
    with pytest.raises(ValueError, match="does not fit MultiPeriodDiscriminator"):
        _tiny_module(init_discriminator_from=str(other))

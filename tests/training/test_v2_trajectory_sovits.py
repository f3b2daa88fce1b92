"""Our SoVITS stage trains like GPT-SoVITS v2's own s2_train.py, step for step (issue 17).

The fixture (scripts/make_training_fixtures.py) ran the reference's generator/discriminator step — AdamW for both,
the text path at 0.4x, ExponentialLR per epoch (pre-stepped once), mel x45 and KL x1 — on its own tiny networks
over fixed batches, recording each step's posterior noise and slice positions. Here our SoVITSModule, configured by
the shipped ``conf/model/sovits.yaml``, runs through the real Lightning ``Trainer`` on the same batches, draws and
initial weights. The GAN is chaotic (two fp32 runs of the reference itself drift apart), so every loss term and
gradient norm is compared step by step over the fixture's horizon within a multiple of the envelope of the
reference's own reruns at that step (other thread count, last-bit weight changes, float64 on the same draws); the
learning rates exactly. Three runs: fp32; v2's fp16 GradScaler (skip on overflow, back-off, regrowth, one update
per batch) in float32 arithmetic; and a run stopped after a few steps and resumed from its checkpoint. Every size
comes from the fixture's JSON.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins import MixedPrecision
from omegaconf import OmegaConf

from gpt_sovits_train.callbacks.data_position import DataPositionTracker
from gpt_sovits_train.lit.sovits_module import SoVITSModule
from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator

from .trajectory import FixedBatches, initial_from_stats, load_fixture, prefixed

RECIPE = Path(__file__).resolve().parents[2] / "conf/model/sovits.yaml"
# ours logs (unweighted) -> the reference's recorded (weighted as in its loss_gen_all)
SERIES = {"loss_disc": "loss_disc", "loss_gen": "loss_gen", "loss_fm": "loss_fm", "loss_mel": "loss_mel",
          "loss_kl": "loss_kl", "loss_commit": "kl_ssl", "loss_total": "loss_gen_all"}
# not in v2's model config: the reference's constructor arguments that ours has no use for (fixed by the v2 layout)
NOT_OURS = ("resblock", "n_layers_q", "use_spectral_norm", "semantic_frame_rate")


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("sovits_v2")


def _module(meta) -> SoVITSModule:
    config, run = meta["config"], meta["run"]
    net = SoVITSGenerator(spec_channels=config["data"]["filter_length"] // 2 + 1,
                          segment_size=config["train"]["segment_size"] // config["data"]["hop_length"],
                          **{k: v for k, v in config["model"].items() if k not in NOT_OURS})
    discriminator = MultiPeriodDiscriminator(periods=run["discriminator_periods"],
                                             use_spectral_norm=config["model"]["use_spectral_norm"],
                                             max_channels=run["discriminator_max_channels"])
    for part in (net, discriminator):  # as the fixture: every dropout off (v2's style encoder hard-codes 0.1)
        for sub in part.modules():
            if isinstance(sub, torch.nn.Dropout):
                sub.p = 0.0
    initial = initial_from_stats(meta["init_stats"], run["seed"])
    net.load_state_dict(prefixed(initial, "g."), strict=True)
    discriminator.load_state_dict(prefixed(initial, "d."), strict=True)
    recipe, train = OmegaConf.load(RECIPE), config["train"]
    optimizer = instantiate(recipe.optimizer)
    assert (optimizer.keywords["lr"], list(optimizer.keywords["betas"]), optimizer.keywords["eps"]) == (
        train["learning_rate"], train["betas"], train["eps"]), "the shipped recipe is not the fixture's v2 recipe"
    assert recipe.scheduler.gamma == train["lr_decay"]
    return SoVITSModule(net, discriminator, optimizer=optimizer, scheduler=instantiate(recipe.scheduler),
                        text_low_lr_rate=recipe.text_low_lr_rate, c_mel=recipe.c_mel, c_kl=recipe.c_kl,
                        num_val_samples=0)


def _epochs(meta, tensors) -> list[list[dict[str, torch.Tensor]]]:
    """Per epoch, its batches; each carries the draws the reference made at that optimizer step."""
    run = meta["run"]
    per_epoch = run["batches_per_epoch"]
    epochs = []
    for first in range(0, run["optimizer_steps"], per_epoch):
        epoch = []
        for step in range(first, min(first + per_epoch, run["optimizer_steps"])):
            batch = {k: (v.float() if v.is_floating_point() else v)
                     for k, v in prefixed(tensors, f"batch{step % per_epoch}.").items()}
            batch.update(prefixed(tensors, f"step{step}."))
            epoch.append(batch)
        epochs.append(epoch)
    return epochs


class SoVITSStepRecorder(pl.Callback):
    """Per batch: every logged loss term, each optimizer's learning rates and gradient norm (as the step saw them,
    after unscaling), whether each network's weights moved, and the GradScaler's scale after the batch."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._before: dict[str, list[torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rows.append({})
        self._before = {"g": [p.detach().clone() for p in pl_module.net.parameters()],
                        "d": [p.detach().clone() for p in pl_module.discriminator.parameters()]}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        which = "d" if optimizer.param_groups[0]["params"][0] is next(pl_module.discriminator.parameters()) else "g"
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = math.sqrt(sum(float(g.norm()) ** 2 for g in grads))
        self.rows[-1].update({f"lr_{which}": [g["lr"] for g in optimizer.param_groups], f"grad_norm_{which}": norm})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        row = self.rows[-1]
        for ours in SERIES:
            row[ours] = float(trainer.callback_metrics[f"train/{ours}"])
        for which, module in (("g", pl_module.net), ("d", pl_module.discriminator)):
            row[f"skipped_{which}"] = all(torch.equal(a, b) for a, b in zip(self._before[which], module.parameters()))
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        row["scale"] = float(scaler.get_scale()) if scaler is not None else 1.0


class ScaledFloat32(MixedPrecision):
    """Lightning's fp16 precision plugin with its GradScaler, computing in float32: the reference's scaler scenario
    (loss scaling, overflow skips) without fp16 kernels, whose rounding differs between CPUs."""

    def autocast_context_manager(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cpu", enabled=False)


def _trainer(root: Path, batches: int, callbacks: list, scaler: dict | None = None) -> pl.Trainer:
    plugins = []
    if scaler is not None:
        plugins = [ScaledFloat32("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", **scaler))]
    return pl.Trainer(
        max_steps=2 * batches,  # manual optimization counts every optimizer.step(): G and D per batch
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=root, callbacks=callbacks, plugins=plugins,
        precision=None if plugins else "32-true",
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )


def _rel(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / max(abs(theirs), 1e-12)


def _assert_trajectory(meta, rows: list[dict], record: dict, envelope: dict, first_step: int) -> None:
    tol = meta["tolerances"]
    horizon = tol["horizon_steps"]
    bad = []
    for offset, row in enumerate(rows):
        step = first_step + offset
        assert row["lr_g"][0] == pytest.approx(record["lr_g"][step][0], rel=tol["lr_rtol"]), step
        # v2 keeps text embedding, text encoder and MRTE in three groups at the same rate; ours in one
        assert all(row["lr_g"][1] == pytest.approx(lr, rel=tol["lr_rtol"]) for lr in record["lr_g"][step][1:])
        assert row["lr_d"][0] == pytest.approx(record["lr_d"][step][0], rel=tol["lr_rtol"]), step
        if step >= horizon:
            continue  # beyond the horizon the reference's own reruns part ways
        for ours, theirs in [*SERIES.items(), ("grad_norm_d", "grad_norm_d"), ("grad_norm_g", "grad_norm_g")]:
            allowed = max(tol["rel_factor"] * envelope[theirs][step], tol["rel_floor"])
            value = row[ours] * (meta["config"]["train"]["c_mel"] if ours == "loss_mel" else 1.0)
            if theirs == "kl_ssl" and record[theirs][step] == 0.0:
                if value != 0.0:
                    bad.append((step, ours, value, 0.0, 0.0))
            elif math.isfinite(record[theirs][step]) and _rel(value, record[theirs][step]) > allowed:
                bad.append((step, ours, value, record[theirs][step], allowed))
            elif not math.isfinite(record[theirs][step]) and math.isfinite(value):
                bad.append((step, ours, value, record[theirs][step], "non-finite"))
    assert not bad, f"off the reference's trajectory (step, term, ours, theirs, allowed): {bad[:6]}"


@pytest.fixture(scope="module")
def full_run(fixture, tmp_path_factory):
    """The whole fp32 run, with a checkpoint after ``resume_after_step`` batches for the resume test."""
    meta, tensors = fixture
    run = meta["run"]
    root = tmp_path_factory.mktemp("sovits_v2_run")
    recorder = SoVITSStepRecorder()
    checkpoints = ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=2 * run["resume_after_step"],
                                  save_top_k=-1, filename="step{step}", auto_insert_metric_name=False)
    _trainer(root, run["optimizer_steps"], [recorder, DataPositionTracker(), checkpoints]).fit(
        _module(meta), datamodule=FixedBatches(epochs=_epochs(meta, tensors)))
    return recorder, root / "ckpt" / f"step{2 * run['resume_after_step']}.ckpt"


@pytest.mark.slow  # 12 GAN steps of a tiny v2 network through the Trainer: ~15 s on 2 idle cores
def test_sovits_trajectory_matches_reference_trainer(fixture, full_run):
    meta, _ = fixture
    run = meta["run"]
    recorder, _ = full_run
    assert len(recorder.rows) == run["optimizer_steps"]
    assert not any(row["skipped_g"] or row["skipped_d"] for row in recorder.rows)
    _assert_trajectory(meta, recorder.rows, meta["record"], meta["envelope_rel"], first_step=0)
    # the learning rate decays per epoch, as v2's ExponentialLR (pre-stepped once) does
    lrs = sorted({row["lr_d"][0] for row in recorder.rows}, reverse=True)
    assert len(lrs) == math.ceil(run["optimizer_steps"] / run["batches_per_epoch"]) and lrs[1] < lrs[0]


@pytest.mark.slow
def test_sovits_grad_scaler_skips_and_backs_off_as_v2(fixture, tmp_path):
    """v2's fp16 loss scaling: a generator step whose scaled gradients overflow is skipped, the scale halves, and
    after ``growth_interval`` good batches it doubles again — one scaler update per batch for both networks."""
    meta, tensors = fixture
    record, horizon = meta["scaler_record"], meta["tolerances"]["horizon_steps"]
    assert any(record["skipped_g"][:horizon]), "the fixture's scaler scenario skips no step: it shows nothing"
    recorder = SoVITSStepRecorder()
    _trainer(tmp_path, horizon, [recorder], scaler=meta["scaler"]).fit(
        _module(meta), datamodule=FixedBatches(epochs=_epochs(meta, tensors)))
    rows = recorder.rows
    assert len(rows) == horizon
    assert [row["skipped_g"] for row in rows] == record["skipped_g"][:horizon]
    assert [row["skipped_d"] for row in rows] == record["skipped_d"][:horizon]
    assert [row["scale"] for row in rows] == record["scale"][:horizon]
    _assert_trajectory(meta, rows, record, meta["scaler_envelope_rel"], first_step=0)


@pytest.mark.slow
def test_sovits_resumed_run_continues_the_reference_trajectory(fixture, full_run, tmp_path):
    meta, tensors = fixture
    run = meta["run"]
    _, checkpoint = full_run
    stop = run["resume_after_step"]
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)  # plain data only: loads safely
    position = state["callbacks"]["DataPositionTracker"]
    assert position["epoch"] * run["batches_per_epoch"] + position["batches_consumed"] == stop
    recorder = SoVITSStepRecorder()
    module = _module(meta)  # fresh weights: everything must come from the file
    _trainer(tmp_path, run["optimizer_steps"], [recorder, DataPositionTracker()]).fit(
        module, datamodule=FixedBatches(epochs=_epochs(meta, tensors)), ckpt_path=str(checkpoint))
    assert len(recorder.rows) == run["optimizer_steps"] - stop
    _assert_trajectory(meta, recorder.rows, meta["record"], meta["envelope_rel"], first_step=stop)

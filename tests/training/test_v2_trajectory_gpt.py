"""Our GPT stage trains like GPT-SoVITS v2's own trainer, step for step (issue 17).

The fixture (scripts/make_training_fixtures.py) ran the reference's ``Text2SemanticLightningModule`` — ScaledAdam,
its schedule as it runs (0.01 for the first step, 0.002 after), its manual stepping (5 batches summed before the
first step, 4 after, leftovers carried over epoch ends) — on a tiny network over fixed batches. Here our GPTModule,
configured by the shipped ``conf/model/gpt_optim/v2.yaml``, runs through the real Lightning ``Trainer`` on the same
batches from the same weights; every batch loss, every step's learning rate and ScaledAdam gradient norm, and the
final weights must agree within the tolerances the fixture measured (its fp32 vs fp64 deviation). The same holds
for a run stopped after step 15 and resumed from its checkpoint. Every size comes from the fixture's JSON.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from gpt_sovits_train.callbacks.data_position import DataPositionTracker
from gpt_sovits_train.lit.gpt_module import GPTModule
from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel

from .trajectory import FixedBatches, StepRecorder, load_fixture, prefixed

RECIPE = Path(__file__).resolve().parents[2] / "conf/model/gpt_optim/v2.yaml"


@pytest.fixture(scope="module")
def fixture():
    return load_fixture("gpt_v2")


def _module(meta, tensors) -> GPTModule:
    sizes = meta["config"]["model"]
    net = Text2SemanticModel(GPTConfig(
        phoneme_vocab_size=sizes["phoneme_vocab_size"], vocab_size=sizes["vocab_size"],
        embedding_dim=sizes["embedding_dim"], hidden_dim=sizes["hidden_dim"], num_heads=sizes["head"],
        num_layers=sizes["n_layer"], ffn_dim=4 * sizes["hidden_dim"], dropout=0.0,
    ))
    net.load_state_dict({k: v.float() for k, v in prefixed(tensors, "init.").items()})
    recipe = OmegaConf.load(RECIPE)
    return GPTModule(
        net, optimizer=instantiate(recipe.optimizer), scheduler=instantiate(recipe.scheduler),
        v2_step_every=recipe.v2_step_every, compat_v2=True, loss_normalization="sum", num_val_generations=0,
    )


def _batches(meta, tensors) -> list[dict[str, torch.Tensor]]:
    out = []
    for i in range(meta["run"]["batches_per_epoch"]):
        batch = prefixed(tensors, f"batch{i}.")
        out.append({k: (v.float() if v.is_floating_point() else v) for k, v in batch.items()})
    return out


def _trainer(root: Path, max_steps: int, callbacks: list) -> pl.Trainer:
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, precision="32-true", logger=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0, default_root_dir=root, callbacks=callbacks,
                      enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks))


def _close(ours: float, theirs: float, rtol: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=rtol, abs_tol=rtol * 1e-3)


def _assert_trajectory(meta, recorder: StepRecorder, first_step: int, first_batch: int) -> None:
    record, tol = meta["record"], meta["tolerances"]
    theirs_loss = record["batch_loss"][first_batch:first_batch + len(recorder.batch_loss)]
    assert len(recorder.batch_loss) == len(theirs_loss) > 0
    bad = [(i + first_batch, o, t) for i, (o, t) in enumerate(zip(recorder.batch_loss, theirs_loss))
           if not _close(o, t, tol["batch_loss_rtol"])]
    assert not bad, f"batch losses off the reference's trajectory (batch, ours, theirs): {bad[:5]}"
    theirs_lr = record["step_lr"][first_step:]
    assert len(recorder.step_lr) == len(theirs_lr)
    assert all(_close(o[0], t[0], tol["lr_rtol"]) for o, t in zip(recorder.step_lr, theirs_lr)), (
        recorder.step_lr, theirs_lr)
    for step, (stats, norm, factor) in enumerate(zip(recorder.step_stats, record["step_grad_norm"][first_step:],
                                                     record["step_clip_factor"][first_step:]), start=first_step + 1):
        assert stats[0]["clip_factor"] == pytest.approx(factor, rel=tol["grad_norm_rtol"]), step
        if norm is not None:  # the reference measures no norm at its first step
            assert _close(float(stats[0]["grad_norm"]), norm, tol["grad_norm_rtol"]), (step, stats, norm)


def _assert_final_weights(meta, tensors, module: GPTModule) -> None:
    final = prefixed(tensors, "final.")
    ours = module.net.state_dict()
    worst = max((float((ours[k] - v).abs().max()), k) for k, v in final.items())
    assert worst[0] <= meta["tolerances"]["final_weight_atol"], worst


def test_recipe_is_v2s():
    recipe = OmegaConf.load(RECIPE)
    assert recipe.optimizer._target_.endswith("ScaledAdam") and recipe.optimizer.lr == 0.01
    assert list(recipe.optimizer.betas) == [0.9, 0.95] and recipe.optimizer.clipping_scale == 2.0
    assert recipe.scheduler.later_lr == 0.002 and recipe.v2_step_every == 4


@pytest.fixture(scope="module")
def full_run(fixture, tmp_path_factory):
    meta, tensors = fixture
    root = tmp_path_factory.mktemp("gpt_v2_run")
    module, recorder = _module(meta, tensors), StepRecorder()
    checkpoints = ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=meta["run"]["resume_after_step"],
                                  save_top_k=-1, filename="step{step}", auto_insert_metric_name=False)
    trainer = _trainer(root, meta["run"]["optimizer_steps"], [recorder, DataPositionTracker(), checkpoints])
    trainer.fit(module, datamodule=FixedBatches(_batches(meta, tensors)))
    return module, recorder, root / "ckpt" / f"step{meta['run']['resume_after_step']}.ckpt"


@pytest.mark.slow  # ~160 batches through the Trainer: ~30 s on 2 idle cores
def test_gpt_trajectory_matches_reference_trainer(fixture, full_run):
    meta, tensors = fixture
    module, recorder, _ = full_run
    assert len(recorder.step_lr) == meta["run"]["optimizer_steps"]
    # v2's stepping, as shown by the lrs: 0.01 once, then 0.002; and by the batch count (5 + 4 + ... carried over)
    assert recorder.step_lr[0][0] == pytest.approx(0.01) and recorder.step_lr[1][0] == pytest.approx(0.002)
    _assert_trajectory(meta, recorder, first_step=0, first_batch=0)
    _assert_final_weights(meta, tensors, module)


@pytest.mark.slow
def test_gpt_resumed_run_continues_the_reference_trajectory(fixture, full_run, tmp_path):
    meta, tensors = fixture
    _, _, checkpoint = full_run
    assert checkpoint.is_file()
    stop = meta["run"]["resume_after_step"]
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)  # plain data only: loads safely
    assert state["global_step"] == stop
    position = state["callbacks"]["DataPositionTracker"]
    batches_before = position["epoch"] * meta["run"]["batches_per_epoch"] + position["batches_consumed"]
    module, recorder = _module(meta, tensors), StepRecorder()  # fresh weights: everything must come from the file
    trainer = _trainer(tmp_path, meta["run"]["optimizer_steps"], [recorder, DataPositionTracker()])
    trainer.fit(module, datamodule=FixedBatches(_batches(meta, tensors)), ckpt_path=str(checkpoint))
    _assert_trajectory(meta, recorder, first_step=stop, first_batch=batches_before)
    _assert_final_weights(meta, tensors, module)


def test_scaled_adam_clipping_and_scalars_match_the_reference_optimizer():
    """v2's clipping period (1000) never clips in the run above; here the reference's ScaledAdam ran alone with a
    period of 8 (in float64, input spikes, two one-element parameters): losses, clipping factors and the final
    parameters must agree with ours (to the float32 precision of the reference's norm bookkeeping)."""
    from gpt_sovits_train.lit.optim import ScaledAdam

    from .trajectory import scaled_adam_problem

    meta, _ = load_fixture("scaled_adam_v2")
    run, tol = meta["run"], meta["tolerances"]
    assert meta["observed"]["steps_clipped"] > 0
    net, loss = scaled_adam_problem(run)
    optimizer = ScaledAdam(net.parameters(), lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0,
                           clipping_update_period=run["period"])
    for i in range(run["steps"]):
        optimizer.zero_grad()
        value = loss(i)
        value.backward()
        optimizer.step()
        assert math.isclose(float(value), meta["record"]["loss"][i], rel_tol=tol["rtol"]), i
        factor = meta["record"]["clip_factor"][i]
        assert optimizer.last_stats[0]["clip_factor"] == pytest.approx(factor, rel=tol["rtol"]), i
    for name, param in net.named_parameters():
        torch.testing.assert_close(param.detach().flatten(), torch.tensor(meta["final"][name], dtype=param.dtype),
                                   rtol=tol["rtol"], atol=tol["atol"])

"""GPTModule through a real lightning.Trainer: overfitting, mixed precision, accumulation, DPO, fine-tune init."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from gpt_sovits_train.lit.gpt_module import GPTModule
from gpt_sovits_train.models.gpt.losses import make_rejected_semantic

CONF = Path(__file__).resolve().parents[3] / "conf"
EOS = 1024


def make_gpt_batch(lengths: list[tuple[int, int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A docs/design.md GPT batch: phonemes right-padded with 0, semantic with EOS, BERT zero-padded."""
    g = torch.Generator().manual_seed(seed)
    b, p, s = len(lengths), max(x for x, _ in lengths), max(y for _, y in lengths)
    batch = {
        "phoneme_ids": torch.zeros(b, p, dtype=torch.long),
        "phoneme_ids_len": torch.tensor([x for x, _ in lengths]),
        "bert_feature": torch.zeros(b, 1024, p),
        "semantic_ids": torch.full((b, s), EOS, dtype=torch.long),
        "semantic_ids_len": torch.tensor([y for _, y in lengths]),
    }
    for i, (x, y) in enumerate(lengths):
        batch["phoneme_ids"][i, :x] = torch.randint(1, 732, (x,), generator=g)
        batch["bert_feature"][i, :, :x] = torch.randn(1024, x, generator=g)
        batch["semantic_ids"][i, :y] = torch.randint(0, 1024, (y,), generator=g)
    return batch


class RepeatBatches(torch.utils.data.Dataset):
    def __init__(self, batches: list[dict[str, torch.Tensor]], repeats: int) -> None:
        self.batches, self.repeats = batches, repeats

    def __len__(self) -> int:
        return len(self.batches) * self.repeats

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batches[index % len(self.batches)]


def loader(batches, repeats: int) -> DataLoader:
    return DataLoader(RepeatBatches(batches, repeats), batch_size=None, shuffle=False)


def build_module(*overrides: str) -> GPTModule:
    with initialize_config_dir(config_dir=str(CONF / "model"), version_base="1.3"):
        cfg = compose(config_name="gpt", overrides=["gpt@net=tiny", *overrides])
    return instantiate(cfg)


def trainer(**kwargs) -> pl.Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


@pytest.mark.slow  # 49 s on 2 loaded cores (CLI subprocess or training run)
def test_tiny_model_memorizes_short_sequences():
    batches = [make_gpt_batch([(6, 10), (4, 7)], seed=1), make_gpt_batch([(5, 8), (6, 9)], seed=2)]
    module = build_module("optimizer.lr=3e-3", "scheduler=null", "loss_normalization=token")
    trainer(max_steps=150).fit(module, loader(batches, 200))
    module.eval()
    with torch.no_grad():
        accuracies = [float(module.compute_losses(b)["acc_top1"]) for b in batches]
    assert min(accuracies) >= 0.9, accuracies


class GradientTap(pl.Callback):
    """Keeps a copy of every gradient the optimizer is about to apply (before clipping, after accumulation)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps.append({n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None})


def test_accumulating_two_half_batches_gives_the_full_batch_gradient():
    """accumulate_grad_batches=2 over the two halves of a batch applies the full batch's gradient: Lightning
    divides each half's summed loss by 2, so the accumulated gradient is half the full batch's summed-loss one."""
    full = make_gpt_batch([(5, 6), (3, 4), (6, 5), (4, 7)], seed=3)
    halves = [{k: v[:2] for k, v in full.items()}, {k: v[2:] for k, v in full.items()}]
    grads = []
    for batches, accumulate in (([full], 1), (halves, 2)):
        torch.manual_seed(0)
        module, tap = build_module("scheduler=null"), GradientTap()
        trainer(max_steps=1, accumulate_grad_batches=accumulate, gradient_clip_val=None, callbacks=[tap]).fit(
            module, loader(batches, 1)
        )
        assert len(tap.steps) == 1
        grads.append(tap.steps[0])
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name] * 2, g, atol=1e-5, rtol=1e-4, msg=name)


def test_dpo_term_has_the_value_of_a_uniform_model():
    """A model whose logits are all equal gives every token log p = -log(1025), so each row's DPO margin is
    (rejected length - chosen length) * log(1025) > 0 (the rejected copy repeats a span): the term is
    mean(-log sigma(beta * margin)), below log 2, and it is added to the loss."""
    batch = make_gpt_batch([(5, 6), (3, 9)], seed=4)
    module = build_module("dpo=true", "dpo_beta=0.2", "scheduler=null")
    with torch.no_grad():
        module.net.ar_predict_layer.weight.zero_()
        if module.net.ar_predict_layer.bias is not None:
            module.net.ar_predict_layer.bias.zero_()
    torch.manual_seed(7)
    with torch.no_grad():
        out = module.eval().compute_losses(batch)
    torch.manual_seed(7)
    _, rejected_lens = make_rejected_semantic(batch["semantic_ids"], batch["semantic_ids_len"], EOS)
    margin = (rejected_lens - batch["semantic_ids_len"]).double() * torch.log(torch.tensor(1025.0, dtype=torch.double))
    assert (margin > 0).all()
    expected = -torch.nn.functional.logsigmoid(0.2 * margin).mean()
    torch.testing.assert_close(out["dpo"].double(), expected, atol=1e-4, rtol=1e-4)
    assert float(out["dpo"]) < float(torch.log(torch.tensor(2.0)))  # chosen preferred: below the 50/50 value
    torch.testing.assert_close(out["loss"], out["ce"] + out["dpo"])


def test_bf16_mixed_steps_with_accumulation_and_dpo_update_weights():
    batch = make_gpt_batch([(5, 6), (3, 4)])
    module = build_module("dpo=true", "scheduler.warmup_steps=2", "scheduler.total_steps=10")
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    tap = GradientTap()
    trainer(max_steps=2, precision="bf16-mixed", accumulate_grad_batches=2, callbacks=[tap]).fit(
        module, loader([batch], 4)
    )
    assert len(tap.steps) == 2  # 4 batches, accumulated 2 by 2
    assert all(torch.isfinite(g).all() for step in tap.steps for g in step.values())
    assert all(torch.isfinite(v).all() for v in module.net.state_dict().values())
    moved = [k for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])]
    assert len(moved) == len(before), f"weights never updated: {sorted(set(before) - set(moved))}"


def test_validation_loss_and_tokens_and_generation_hook():
    batch = make_gpt_batch([(5, 6), (3, 4)])
    module = build_module()
    metrics = trainer(max_steps=1).validate(module, loader([batch], 1), verbose=False)[0]
    assert {"val/loss", "val/acc_top3", "val/acc_top1"} <= set(metrics)
    assert GPTModule.tokens_in_batch(batch) == 5 + 3 + 6 + 4 + 2
    generated = module.generate_for_validation(batch, max_new_tokens=5)
    assert len(generated) == 2 and all(len(g) <= 5 for g in generated)


def test_init_from_v2_ckpt(tmp_path):
    source = build_module()
    path = tmp_path / "gpt-e1.ckpt"
    torch.save(
        {
            "weight": {f"model.{k}": v.half() for k, v in source.net.state_dict().items()},
            "config": {},
            "info": "GPT-e1",
        },
        path,
    )
    module = build_module(f"init_from={path}")
    for key, value in module.net.state_dict().items():
        assert torch.equal(value, source.net.state_dict()[key].half().float()), key


def test_batch_without_required_fields_is_rejected():
    module = build_module()
    batch = make_gpt_batch([(3, 3)])
    del batch["bert_feature"]
    with pytest.raises(KeyError, match="bert_feature"):
        module.compute_losses(batch)


def test_lightning_checkpoint_loads_with_weights_only(tmp_path):
    batch = make_gpt_batch([(4, 5)])
    module = build_module()
    run = trainer(max_steps=1)
    run.fit(module, loader([batch], 1))
    path = tmp_path / "last.ckpt"
    run.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["hyper_parameters"]["compat_v2"] is False
    assert any(k.startswith("net.h.layers.0.") for k in state["state_dict"])

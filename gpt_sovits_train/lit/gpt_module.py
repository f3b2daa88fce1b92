"""LightningModule for the GPT stage: next-semantic-token training on v2-format batches.

Training logic only; the network is ``models.gpt.Text2SemanticModel`` (``net``), built by Hydra from
``conf/model/gpt/<preset>.yaml``. Batches follow docs/design.md (phonemes right-padded with 0, semantic ids
right-padded with EOS 1024, BERT zero-padded).

Optimization: two recipes (``conf/model/gpt_optim/``, docs/training.md "GPT optimizer recipes").
- ``v2`` (the v2 fine-tune experiments): ScaledAdam with v2's schedule as it runs (0.01 for the first step,
  0.002 after) and v2's manual stepping (``v2_step_every=4``: step when ``batch_idx > 0 and batch_idx % 4 == 0``,
  so 5 batches are summed before the first step, 4 before each later one, and leftovers carry into the next
  epoch). Its trajectory matches the reference's own trainer (tests/training/test_v2_trajectory_gpt.py).
- ``adamw`` (the plain ``model=gpt`` default: demos, pre-training, cloning): Lightning's automatic optimization
  with AdamW and a warmup-cosine schedule, so the Trainer's gradient clipping and accumulation apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from gpt_sovits_train.interchange.checkpoints import load_gpt_init
from gpt_sovits_train.models.gpt.kv_cache import KVDecoder
from gpt_sovits_train.models.gpt.losses import (
    make_rejected_semantic,
    reference_free_dpo,
    sequence_log_probs,
    summed_cross_entropy,
    top_k_accuracy,
)
from gpt_sovits_train.models.gpt.model import Text2SemanticModel
from gpt_sovits_train.models.gpt.sampling import SamplingOptions

REQUIRED_KEYS = ("phoneme_ids", "phoneme_ids_len", "bert_feature", "semantic_ids", "semantic_ids_len")


class GPTModule(pl.LightningModule):
    """Teacher-forced training of the text-to-semantic transformer.

    Args:
        net: the network (Hydra builds it from ``model.net``).
        optimizer: ``_partial_`` optimizer factory taking the parameters.
        scheduler: ``_partial_`` scheduler factory taking the optimizer, or None; stepped every optimizer step.
        init_from: official GPT-SoVITS v2 ``.ckpt`` (or one of ours) to fine-tune from; loaded strictly.
        compat_v2: reproduce the reference's training quirks (left-padding text mask on right-padded data,
            padded targets counted as EOS in the summed loss). Off = correct masking, padding ignored.
        accuracy_top_k: k of the logged top-k accuracy (v2 logs top-3, ignoring EOS targets).
        dpo: add v2's reference-free DPO term against a corrupted copy of each target sequence.
        dpo_beta: DPO temperature (v2: 0.2).
        loss_normalization: "sum" (v2: summed CE, longer utterances weigh more) or "token" (mean per target).
        num_val_generations: rows of the first validation batch decoded free-running (greedy, no prompt) to
            watch for hallucination: ``val/gen_length_ratio`` (generated / true length; far above 1 = repeats or
            no EOS, far below = skipped words) and ``val/gen_eos_rate``.
        validation_vocoder: ``(codes, phone_ids) -> wav`` (e.g. ``inference.vocoder.ReferenceVocoder``) that
            makes those generations audible in the logger.
        v2_step_every: None = Lightning's automatic optimization (Trainer clipping/accumulation apply; the
            scheduler steps after every optimizer step). N = v2's manual stepping: gradients of every batch are
            summed and the optimizer steps when ``batch_idx > 0 and batch_idx % N == 0`` (v2: 4), then the
            scheduler; the Trainer's ``gradient_clip_val`` and ``accumulate_grad_batches`` must stay unset.
    """

    def __init__(
        self,
        net: Text2SemanticModel,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        init_from: str | None = None,
        compat_v2: bool = False,
        accuracy_top_k: int = 3,
        dpo: bool = False,
        dpo_beta: float = 0.2,
        loss_normalization: str = "sum",
        num_val_generations: int = 2,
        validation_vocoder: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        v2_step_every: int | None = None,
    ) -> None:
        super().__init__()
        if v2_step_every is not None and v2_step_every < 1:
            raise ValueError(f"v2_step_every must be >= 1 or null, got {v2_step_every}")
        self.automatic_optimization = v2_step_every is None
        if loss_normalization not in ("sum", "token"):
            raise ValueError(f"loss_normalization must be 'sum' or 'token', got {loss_normalization!r}")
        # the network and the optimizer/scheduler factories stay out of hparams: checkpoints must load with weights_only
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "validation_vocoder"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.validation_vocoder = validation_vocoder
        self.validation_audio: list[dict] = []  # read by callbacks.audio_logging.AudioSampleLogger
        if init_from:
            load_gpt_init(self.net, init_from)

    @staticmethod
    def tokens_in_batch(batch: dict[str, torch.Tensor]) -> int:
        """Phonemes read plus semantic tokens predicted (each row's tokens and its EOS): for tokens/s."""
        return int(batch["phoneme_ids_len"].sum() + batch["semantic_ids_len"].sum() + batch["semantic_ids_len"].numel())

    def _check(self, batch: dict[str, torch.Tensor]) -> None:
        missing = [k for k in REQUIRED_KEYS if k not in batch]
        if missing:
            raise KeyError(f"GPT batch lacks {missing}; expected the docs/design.md GPT batch from GPTDataModule")

    def _forward(self, batch: dict[str, torch.Tensor], semantic: torch.Tensor, semantic_lens: torch.Tensor):
        return self.net.teacher_forced(
            batch["phoneme_ids"],
            batch["phoneme_ids_len"],
            semantic,
            semantic_lens,
            batch["bert_feature"],
            compat_v2=self.hparams.compat_v2,
        )

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """CE (and DPO) loss plus accuracy for one batch; ``loss`` is what gets optimized."""
        self._check(batch)
        logits, targets = self._forward(batch, batch["semantic_ids"], batch["semantic_ids_len"])
        ce = summed_cross_entropy(logits, targets)
        counted = (targets != -100).sum().clamp(min=1)
        out = {
            "ce": ce,
            "ce_per_token": ce.detach() / counted,
            "acc": top_k_accuracy(logits.detach(), targets, self.hparams.accuracy_top_k, self.net.eos),
            "acc_top1": top_k_accuracy(logits.detach(), targets, 1, self.net.eos),
        }
        loss = ce if self.hparams.loss_normalization == "sum" else ce / counted
        if self.hparams.dpo:
            rejected, rejected_lens = make_rejected_semantic(
                batch["semantic_ids"], batch["semantic_ids_len"], self.net.eos
            )
            rejected_logits, rejected_targets = self._forward(batch, rejected, rejected_lens)
            out["dpo"] = reference_free_dpo(
                sequence_log_probs(logits, targets),
                sequence_log_probs(rejected_logits, rejected_targets),
                self.hparams.dpo_beta,
            )
            loss = loss + out["dpo"]
        out["loss"] = loss
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.compute_losses(batch)
        size = batch["phoneme_ids"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=size)
        self.log("train/ce_per_token", out["ce_per_token"], batch_size=size)
        self.log(f"train/acc_top{self.hparams.accuracy_top_k}", out["acc"], prog_bar=True, batch_size=size)
        self.log("train/acc_top1", out["acc_top1"], batch_size=size)
        if "dpo" in out:
            self.log("train/dpo", out["dpo"], batch_size=size)
        self.log("train/tokens", float(self.tokens_in_batch(batch)), reduce_fx="sum", batch_size=size)
        if self.trainer is not None and self.trainer.optimizers:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        if not self.automatic_optimization:
            self._v2_manual_step(out["loss"], batch_idx)
        return out["loss"]

    def _v2_manual_step(self, loss: torch.Tensor, batch_idx: int) -> None:
        """v2's stepping: sum this batch's gradients in; step (then the schedule) when batch_idx > 0 and
        batch_idx % N == 0. Gradients left at an epoch's end are kept and join the next epoch's first step."""
        self.manual_backward(loss)
        every = self.hparams.v2_step_every
        if batch_idx > 0 and batch_idx % every == 0:
            optimizer = self.optimizers()
            optimizer.step()
            optimizer.zero_grad()
            self._log_step_stats(optimizer)
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        if self.automatic_optimization:
            self._log_step_stats(optimizer)

    def _log_step_stats(self, optimizer: Any) -> None:
        """Gradient norm before and after the optimizer's own clipping, where it reports one (ScaledAdam)."""
        stats = getattr(getattr(optimizer, "optimizer", optimizer), "last_stats", None)
        if stats:
            norm = stats[0]["grad_norm"]
            self.log("train/grad_norm", norm, batch_size=1)
            self.log("train/grad_norm_clipped", norm * stats[0]["clip_factor"], batch_size=1)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.compute_losses(batch)
        size = batch["phoneme_ids"].shape[0]
        self.log("val/loss", out["loss"], prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val/ce_per_token", out["ce_per_token"], sync_dist=True, batch_size=size)
        self.log(f"val/acc_top{self.hparams.accuracy_top_k}", out["acc"], sync_dist=True, batch_size=size)
        self.log("val/acc_top1", out["acc_top1"], sync_dist=True, batch_size=size)
        if batch_idx == 0 and self.hparams.num_val_generations > 0:
            self._free_running_validation(batch)

    def _free_running_validation(self, batch: dict[str, torch.Tensor]) -> None:
        rows = min(self.hparams.num_val_generations, batch["phoneme_ids"].shape[0])
        subset = {k: batch[k][:rows] for k in REQUIRED_KEYS}
        true_lengths = subset["semantic_ids_len"].float()
        limit = int(2 * true_lengths.max().item()) + 10
        generated = self.generate_for_validation(subset, max_new_tokens=limit)
        lengths = torch.tensor([float(g.numel()) for g in generated], device=true_lengths.device)
        self.log("val/gen_length_ratio", (lengths / true_lengths.clamp(min=1)).mean(), sync_dist=True)
        self.log("val/gen_eos_rate", (lengths < limit).float().mean(), sync_dist=True)
        self.validation_audio = []
        if self.validation_vocoder is None:
            return
        keys = batch.get("keys") or [f"val_{i}" for i in range(rows)]
        for i, tokens in enumerate(generated):
            if tokens.numel() == 0:
                continue
            phones = subset["phoneme_ids"][i, : int(subset["phoneme_ids_len"][i])]
            wav = self.validation_vocoder(tokens, phones).cpu()
            self.validation_audio.append({"key": keys[i], "real": None, "generated": wav})

    def generate_for_validation(self, batch: dict[str, torch.Tensor], max_new_tokens: int = 500) -> list[torch.Tensor]:
        """Free-running semantic tokens for each row (greedy, whole row as text, no prompt).

        Hook for the audio-logging callback: it turns these tokens into audio through a SoVITS checkpoint.
        """
        was_training = self.net.training
        self.net.eval()
        try:
            out = KVDecoder(self.net).generate(
                batch["phoneme_ids"],
                batch["bert_feature"],
                phoneme_lens=batch["phoneme_ids_len"],
                options=SamplingOptions(greedy=True, max_new_tokens=max_new_tokens),
            )
        finally:
            self.net.train(was_training)
        return [out.row(i) for i in range(out.tokens.shape[0])]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        # manual (v2) stepping calls the scheduler itself after each optimizer step; automatic: Lightning does
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def state_dict_v2(self) -> dict[str, torch.Tensor]:
        """Network weights under v2 ``.ckpt`` names (``model.`` prefix), for export to GPT-SoVITS."""
        return {f"model.{k}": v for k, v in self.net.state_dict().items()}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""SoVITS stage LightningModule: adversarial VITS training of the v2 generator (manual optimization).

Why manual optimization: the generator and discriminator steps alternate within one batch and use different
losses, so the two AdamW optimizers are stepped by hand. Mixed precision and loss scaling go through
`self.manual_backward` / `self.clip_gradients`, so Lightning's precision plugin (bf16 / fp16 + GradScaler)
handles them; a non-finite loss skips the step (logged as `train/skipped_nonfinite`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from gpt_sovits_train.audio.metrics import mel_cepstral_distortion, multi_resolution_stft_distance
from gpt_sovits_train.audio.spectrogram import mel_spectrogram, spec_to_mel
from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator
from gpt_sovits_train.models.sovits.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    kl_loss,
    mel_reconstruction_loss,
)
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator, slice_segments

log = logging.getLogger(__name__)

HOP = 640
REQUIRED_KEYS = ("ssl", "spec", "spec_lengths", "wav", "text", "text_lengths")
TEXT_PATH_PREFIXES = ("enc_p.text_embedding", "enc_p.encoder_text", "enc_p.mrte")


def load_v2_weights(path: str) -> dict[str, Tensor]:
    """State dict from an official s2G/s2D .pth (or our own checkpoints), read without executing pickles."""
    from gpt_sovits_train.interchange.safe_load import load_checkpoint

    ckpt = load_checkpoint(path)
    for key in ("weight", "model", "state_dict"):
        if isinstance(ckpt.get(key), dict):
            return {k: v for k, v in ckpt[key].items() if isinstance(v, Tensor)}
    return {k: v for k, v in ckpt.items() if isinstance(v, Tensor)}


class SoVITSModule(L.LightningModule):
    """Trains `net` (SoVITSGenerator) against `discriminator` with v2's losses (mel x45, KL x1, FM, LSGAN)."""

    def __init__(
        self,
        net: SoVITSGenerator,
        discriminator: MultiPeriodDiscriminator,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        text_low_lr_rate: float = 0.4,
        c_mel: float = 45.0,
        c_kl: float = 1.0,
        grad_clip_norm: float | None = None,
        accumulate_grad_batches: int = 1,
        freeze: tuple[str, ...] | list[str] = (),
        init_generator_from: str | None = None,
        init_discriminator_from: str | None = None,
        num_val_samples: int = 2,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["net", "discriminator"])
        self.net = net
        self.discriminator = discriminator
        self.validation_audio: list[dict] = []  # filled by validation, read by the audio-logging callback
        if init_generator_from:
            self._load_into(self.net, init_generator_from, allow_missing_prefix="enc_q.")
        if init_discriminator_from:
            self._load_into(self.discriminator, init_discriminator_from)
        self._apply_freeze(freeze)

    # --- setup ------------------------------------------------------------------------------------------
    @staticmethod
    def _load_into(module: nn.Module, path: str, allow_missing_prefix: str | None = None) -> None:
        result = module.load_state_dict(load_v2_weights(path), strict=False)
        missing = [k for k in result.missing_keys if not (allow_missing_prefix and k.startswith(allow_missing_prefix))]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"{path} does not fit {type(module).__name__}: missing {missing[:5]}, unexpected "
                f"{result.unexpected_keys[:5]} (is it a v2 s2G/s2D file for this model size?)"
            )

    def _apply_freeze(self, freeze: tuple[str, ...] | list[str]) -> None:
        groups = {"quantizer": ("quantizer.",), "ssl_proj": ("ssl_proj.",), "text_encoder": TEXT_PATH_PREFIXES}
        for name in freeze:
            if name not in groups:
                raise ValueError(f"unknown freeze group {name!r}; choose from {sorted(groups)}")
            for pname, param in self.net.named_parameters():
                if pname.startswith(groups[name]):
                    param.requires_grad_(False)
        # The frozen tokenizer runs without grad in v2, so its params must not be handed to DDP as trainable.
        if self.net.freeze_quantizer:
            for param in [*self.net.ssl_proj.parameters(), *self.net.quantizer.parameters()]:
                param.requires_grad_(False)

    def configure_optimizers(self):
        text_params = [
            p for n, p in self.net.named_parameters() if p.requires_grad and n.startswith(TEXT_PATH_PREFIXES)
        ]
        other_params = [
            p for n, p in self.net.named_parameters() if p.requires_grad and not n.startswith(TEXT_PATH_PREFIXES)
        ]
        base_lr = self.hparams.optimizer.keywords.get("lr", 1e-4)
        opt_g = self.hparams.optimizer(
            [{"params": other_params}, {"params": text_params, "lr": base_lr * self.hparams.text_low_lr_rate}]
        )
        opt_d = self.hparams.optimizer(self.discriminator.parameters())
        if self.hparams.scheduler is None:
            return [opt_g, opt_d]
        return [opt_g, opt_d], [self.hparams.scheduler(opt_g), self.hparams.scheduler(opt_d)]

    # --- training ---------------------------------------------------------------------------------------
    @staticmethod
    def _check_batch(batch: dict[str, Tensor]) -> None:
        missing = [k for k in REQUIRED_KEYS if k not in batch]
        if missing:
            raise KeyError(f"SoVITS batch lacks {missing}; see docs/design.md (SoVITS batch)")

    def _generator_forward(self, batch: dict[str, Tensor]):
        out = self.net(batch["ssl"], batch["spec"], batch["spec_lengths"], batch["text"], batch["text_lengths"])
        segment = self.net.segment_size
        mel = spec_to_mel(batch["spec"].float())
        y_mel = slice_segments(mel, out.ids_slice, segment)
        y = slice_segments(batch["wav"], out.ids_slice * HOP, segment * HOP)
        y_hat_mel = mel_spectrogram(out.y_hat.float().squeeze(1))
        return out, y, y_mel, y_hat_mel

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._check_batch(batch)
        opt_g, opt_d = self.optimizers()
        accumulate = self.hparams.accumulate_grad_batches
        step_now = (batch_idx + 1) % accumulate == 0
        out, y, y_mel, y_hat_mel = self._generator_forward(batch)

        # Discriminator step on detached generator output.
        scores_real, scores_fake, _, _ = self.discriminator(y, out.y_hat.detach())
        loss_d, _, _ = discriminator_loss(scores_real, scores_fake)
        if self._finite_or_skip(loss_d, "disc"):
            self.manual_backward(loss_d / accumulate)
            if step_now:
                self._clip_step(opt_d)
        # Generator step; the discriminator's grads from this pass are discarded.
        scores_real, scores_fake, fmap_real, fmap_fake = self.discriminator(y, out.y_hat)
        loss_mel = mel_reconstruction_loss(y_mel, y_hat_mel)
        loss_kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask)
        loss_fm = feature_matching_loss(fmap_real, fmap_fake)
        loss_gen, _ = generator_adversarial_loss(scores_fake)
        loss_g = loss_gen + loss_fm + self.hparams.c_mel * loss_mel + self.hparams.c_kl * loss_kl + out.commit_loss
        if self._finite_or_skip(loss_g, "gen"):
            self.manual_backward(loss_g / accumulate)
            opt_d.zero_grad(set_to_none=True)
            if step_now:
                self._clip_step(opt_g)
        elif step_now:
            opt_d.zero_grad(set_to_none=True)
        bs = batch["spec"].shape[0]
        for name, value in {
            "loss_disc": loss_d,
            "loss_gen": loss_gen,
            "loss_fm": loss_fm,
            "loss_mel": loss_mel,
            "loss_kl": loss_kl,
            "loss_commit": out.commit_loss,
            "loss_total": loss_g,
        }.items():
            self.log(f"train/{name}", value.detach().float(), prog_bar=name == "loss_mel", batch_size=bs)

    def _finite_or_skip(self, loss: Tensor, which: str) -> bool:
        finite = bool(torch.isfinite(loss.detach()).all())
        if not finite:
            log.warning("non-finite %s loss at step %d; skipping that update", which, self.global_step)
            self.log(f"train/skipped_nonfinite_{which}", 1.0)
        return finite

    def _clip_step(self, optimizer) -> None:
        if self.hparams.grad_clip_norm:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.grad_clip_norm, gradient_clip_algorithm="norm"
            )
        grads_finite = all(
            torch.isfinite(p.grad).all()
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        )
        if grads_finite:
            optimizer.step()
        else:
            self.log("train/skipped_nonfinite_grad", 1.0)
        optimizer.zero_grad(set_to_none=True)

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    # --- validation -------------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._check_batch(batch)
        _, _, y_mel, y_hat_mel = self._generator_forward(batch)
        loss_mel = mel_reconstruction_loss(y_mel, y_hat_mel)
        size = batch["spec"].shape[0]
        self.log("val/loss_mel", loss_mel, sync_dist=True, batch_size=size)
        # the generic name the checkpoint/early-stopping callbacks monitor (conf/callbacks/*: val/loss)
        self.log("val/loss", loss_mel, sync_dist=True, batch_size=size)
        if batch_idx == 0:
            self._resynthesize_for_validation(batch)

    @torch.no_grad()
    def _resynthesize_for_validation(self, batch: dict[str, Tensor]) -> None:
        """Decode the first few utterances from their own semantic codes, with their own spectrogram as the style
        reference, as inference would; log distances to the real audio and keep the audio for
        :class:`~gpt_sovits_train.callbacks.audio_logging.AudioSampleLogger`."""
        self.validation_audio = []
        mcd, mrstft = [], []
        for i in range(min(self.hparams.num_val_samples, batch["ssl"].shape[0])):
            frames, phones = int(batch["spec_lengths"][i]), int(batch["text_lengths"][i])
            codes = self.net.extract_latent(batch["ssl"][i : i + 1, :, :frames])
            generated = self.net.decode(
                codes, batch["text"][i : i + 1, :phones], batch["spec"][i : i + 1, :, :frames], noise_scale=0.5
            )[0, 0].float()
            real = batch["wav"][i, 0, : frames * HOP].float()
            mcd.append(mel_cepstral_distortion(generated, real))
            mrstft.append(multi_resolution_stft_distance(generated, real))
            key = batch["keys"][i] if "keys" in batch else f"val_{i}"
            self.validation_audio.append({"key": key, "real": real.cpu(), "generated": generated.cpu()})
        if mcd:
            self.log("val/mcd_db", sum(mcd) / len(mcd), sync_dist=True)
            self.log("val/mrstft", sum(mrstft) / len(mrstft), sync_dist=True)

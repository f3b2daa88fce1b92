"""SoVITS stage LightningModule: adversarial VITS training of the v2 generator (manual optimization).

Why manual optimization: the generator and discriminator steps alternate within one batch and use different
losses, so the two AdamW optimizers are stepped by hand. Mixed precision and loss scaling go through
`self.manual_backward` / `self.clip_gradients`, so Lightning's precision plugin (bf16 / fp16 + GradScaler)
handles them; a non-finite loss skips the step (logged as `train/skipped_nonfinite`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from gpt_sovits_train.audio.metrics import mel_cepstral_distortion, multi_resolution_stft_distance
from gpt_sovits_train.audio.spectrogram import mel_spectrogram, spec_to_mel
from gpt_sovits_train.constants import HOP
from gpt_sovits_train.data.collate import CODEC_PREPARE_HINT
from gpt_sovits_train.interchange.checkpoints import init_weights
from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator
from gpt_sovits_train.models.sovits.losses import (
    discriminator_loss,
    generator_gan_losses,
    kl_loss,
    mel_reconstruction_loss,
)
from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator, slice_segments

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("spec", "spec_lengths", "wav", "text", "text_lengths")  # + the content (see _check_batch)
TEXT_PATH_PREFIXES = ("enc_p.text_embedding", "enc_p.encoder_text", "enc_p.mrte")


class SoVITSModule(L.LightningModule):
    """Trains `net` (SoVITSGenerator) against `discriminator` with v2's losses (mel x45, KL x1, FM, LSGAN).

    ``c_adv`` weighs the generator's adversarial and feature-matching terms (1, as in v2; 0 leaves the reconstruction
    losses alone)."""

    def __init__(
        self,
        net: SoVITSGenerator,
        discriminator: MultiPeriodDiscriminator,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        text_low_lr_rate: float = 0.4,
        c_mel: float = 45.0,
        c_kl: float = 1.0,
        c_adv: float = 1.0,
        grad_clip_norm: float | None = None,
        accumulate_grad_batches: int = 1,
        freeze: tuple[str, ...] | list[str] = (),
        init_generator_from: str | None = None,
        init_discriminator_from: str | None = None,
        num_val_samples: int = 2,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        # factories stay out of hparams: checkpoints must load with weights_only (plain data only)
        self.save_hyperparameters(ignore=["net", "discriminator", "optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = net
        self.discriminator = discriminator
        self.validation_audio: list[dict] = []  # filled by validation, read by the audio-logging callback
        if init_generator_from:
            self._load_generator(init_generator_from)
        if init_discriminator_from:
            self._load_into(self.discriminator, init_discriminator_from)
        self._apply_freeze(freeze)

    # --- setup ------------------------------------------------------------------------------------------
    def _load_generator(self, path: str) -> None:
        """v2 s2G weights into the generator. Parts a v2 file cannot hold for this configuration keep their
        initialisation (``net.keys_not_in_v2()``: ECAPA ``spk_proj``, an iSTFT ``dec``, EnCodec ``content_emb``);
        exported v2 files may lack ``enc_q``; an EnCodec-content net has no use for v2's tokenizer weights."""
        fresh = set(self.net.keys_not_in_v2())
        unused = ("ssl_proj.", "quantizer.") if self.net.content_source != "ssl" else ()
        if self.net.decoder != "hifigan":
            unused = (*unused, "dec.")  # v2's HiFi-GAN weights do not fit the iSTFT head
        state = {k: v for k, v in init_weights(path).items() if k not in fresh and not k.startswith(unused)}
        if fresh:
            log.info("not in %s, left at initialisation: %s", path, sorted(fresh))
        self._load_into(self.net, path, allow_missing=("enc_q.", *fresh), state=state)

    @staticmethod
    def _load_into(
        module: nn.Module, path: str, allow_missing: tuple[str, ...] = (), state: dict[str, Tensor] | None = None
    ) -> None:
        result = module.load_state_dict(init_weights(path) if state is None else state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(allow_missing)]
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
        opt_g = self.optimizer_factory([{"params": other_params}, {"params": text_params}])
        opt_g.param_groups[1]["lr"] = opt_g.defaults["lr"] * self.hparams.text_low_lr_rate  # v2: text path x0.4
        opt_d = self.optimizer_factory(self.discriminator.parameters())
        if self.scheduler_factory is None:
            return [opt_g, opt_d]
        return [opt_g, opt_d], [self.scheduler_factory(opt_g), self.scheduler_factory(opt_d)]

    # --- training ---------------------------------------------------------------------------------------
    @property
    def content_source(self) -> str:
        """``ssl`` (v2: HuBERT features through ssl_proj + VQ) or ``encodec`` (EnCodec content tokens)."""
        return getattr(self.net, "content_source", "ssl")

    @property
    def uses_speaker(self) -> bool:
        """Whether the generator is conditioned on an ECAPA speaker embedding (``speaker_dim > 0``)."""
        return int(getattr(self.net, "speaker_dim", 0) or 0) > 0

    def _check_batch(self, batch: dict[str, Tensor]) -> None:
        missing = [k for k in REQUIRED_KEYS if k not in batch]
        if missing:
            raise KeyError(f"SoVITS batch lacks {missing}; see docs/design.md (SoVITS batch)")
        if self.content_source == "encodec" and "content_codes" not in batch:
            raise KeyError(
                "the EnCodec generator (content_source=encodec) needs batch['content_codes'], made from EnCodec "
                f"codes in the shards; {CODEC_PREPARE_HINT}"
            )
        if self.uses_speaker and "speaker_embedding" not in batch:
            raise KeyError(
                "the generator has speaker_dim > 0 and needs batch['speaker_embedding']: prepare the shards with "
                "features.speaker={_target_: gpt_sovits_train.features.speaker.EcapaSpeakerEncoder, model: "
                "<folder>} (the random_init feature presets include it)"
            )

    def _content(self, batch: dict[str, Tensor]) -> Tensor:
        """What the generator reads as content: SSL features [B, 768, T] or EnCodec tokens [B, ceil(T/2)]."""
        return batch["content_codes"] if self.content_source == "encodec" else batch["ssl"]

    def _conditioning(self, batch: dict[str, Tensor], rows: slice | None = None) -> dict[str, Tensor]:
        """Keyword arguments that only some generator presets take (speaker embedding)."""
        if not self.uses_speaker:
            return {}
        embedding = batch["speaker_embedding"]
        return {"speaker_embedding": embedding if rows is None else embedding[rows]}

    def _generator_forward(self, batch: dict[str, Tensor]):
        out = self.net(
            self._content(batch),
            batch["spec"],
            batch["spec_lengths"],
            batch["text"],
            batch["text_lengths"],
            # pre-drawn randomness, when a batch carries it (reproducible runs, the v2 trajectory test)
            posterior_noise=batch.get("posterior_noise"),
            slice_uniform=batch.get("slice_uniform"),
            **self._conditioning(batch),
        )
        segment = self.net.segment_size
        # mel of the real segment only: spec_to_mel is per frame, so slicing first gives the same values
        y_mel = spec_to_mel(slice_segments(batch["spec"], out.ids_slice, segment).float())
        y = slice_segments(batch["wav"], out.ids_slice * HOP, segment * HOP)
        y_hat_mel = mel_spectrogram(out.y_hat.float().squeeze(1))
        return out, y, y_mel, y_hat_mel

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._check_batch(batch)
        self.nonfinite_terms: list[str] = []  # what this step skipped; callbacks.nan_guard counts and stops on it
        opt_g, opt_d = self.optimizers()
        accumulate = self.hparams.accumulate_grad_batches
        step_now = (batch_idx + 1) % accumulate == 0
        out, y, y_mel, y_hat_mel = self._generator_forward(batch)

        with self._one_scaler_update_per_batch():
            # Discriminator step on detached generator output.
            scores_real, scores_fake, _, _ = self.discriminator(y, out.y_hat.detach())
            loss_d, _, _ = discriminator_loss(scores_real, scores_fake)
            if self._finite_or_skip(loss_d, "disc", {"loss_disc": loss_d}):
                self.manual_backward(loss_d / accumulate)
                if step_now:
                    self._clip_step(opt_d, "disc")
            # Generator step, against the discriminator as just updated (as v2 does); no discriminator grads.
            loss_gen, loss_fm = generator_gan_losses(self.discriminator, y, out.y_hat)
            loss_mel = mel_reconstruction_loss(y_mel, y_hat_mel)
            loss_kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask)
            # c_adv 1 is v2; 0 trains the reconstruction path alone (the discriminator still learns): a warm-up, and
            # what learning tests assert on, since the adversarial terms make an overfit diverge between CPU kernels.
            hp = self.hparams
            loss_g = hp.c_adv * (loss_gen + loss_fm) + hp.c_mel * loss_mel + hp.c_kl * loss_kl + out.commit_loss
            terms = {"loss_gen": hp.c_adv * loss_gen, "loss_fm": hp.c_adv * loss_fm, "loss_mel": hp.c_mel * loss_mel,
                     "loss_kl": hp.c_kl * loss_kl, "loss_commit": out.commit_loss}  # as weighted in loss_g
            if self._finite_or_skip(loss_g, "gen", terms):
                self.manual_backward(loss_g / accumulate)
                if step_now:
                    self._clip_step(opt_g, "gen")
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

    def _finite_or_skip(self, loss: Tensor, which: str, terms: dict[str, Tensor] | None = None) -> bool:
        finite = bool(torch.isfinite(loss.detach()).all())
        if not finite:
            bad = [name for name, term in (terms or {}).items() if not torch.isfinite(term.detach()).all()]
            self.nonfinite_terms = [*getattr(self, "nonfinite_terms", []), *(bad or [f"{which} loss"])]
            log.warning("non-finite %s loss at step %d; skipping that update", which, self.global_step)
            self.log(f"train/skipped_nonfinite_{which}", 1.0)
        return finite

    def _grad_scaler(self) -> Any | None:
        """The fp16 GradScaler of Lightning's precision plugin, or None (fp32 / bf16 need none)."""
        trainer = getattr(self, "_trainer", None)
        plugin = getattr(trainer, "precision_plugin", None) if trainer is not None else None
        return getattr(plugin, "scaler", None)

    @contextlib.contextmanager
    def _one_scaler_update_per_batch(self) -> Iterator[None]:
        """v2's fp16 loss scaling: one GradScaler, updated once per batch after both steps.

        Lightning's precision plugin updates its scaler after every ``optimizer.step()``; s2_train.py steps D,
        then G, then calls ``scaler.update()`` once, so an overflow in either network backs the scale off once
        and the growth interval counts batches. The update is held back while both networks step; then each
        optimizer's inf check (recorded by the scaler's ``step``) says which update was skipped, and the scaler
        updates once from both.
        """
        self._scaled_steps: list[tuple[Any, str]] = []
        scaler = self._grad_scaler()
        if scaler is None:
            yield
            return
        scaler.update = lambda new_scale=None: None  # instance attribute shadows the method for this batch only
        try:
            yield
        finally:
            del scaler.update
        if not self._scaled_steps:  # accumulating: nothing stepped, nothing to update
            return
        for optimizer, which in self._scaled_steps:
            if _scaler_found_inf(scaler, optimizer):
                log.warning("fp16 overflow in %s gradients at step %d; step skipped, scale lowered",
                            which, self.global_step)
                self.log(f"train/skipped_nonfinite_grad_{which}", 1.0)
        scaler.update()

    def _clip_step(self, optimizer, which: str) -> None:
        """Step unless a gradient is non-finite; a skip is logged and leaves the weights untouched.

        Under fp16 the GradScaler owns that decision: ``optimizer.step()`` goes through Lightning's precision
        plugin, which unscales, skips the update on inf/NaN gradients *and lowers the scale* — skipping here
        instead would leave the scale stuck high and skip every later step too. Clipping happens in
        :meth:`on_before_optimizer_step`, which the plugin calls after unscaling.
        """
        if self._grad_scaler() is not None:
            optimizer.step()  # the scaler skips it on inf/NaN; _one_scaler_update_per_batch logs that and updates
            self._scaled_steps.append((optimizer, which))
        elif self._grads_finite(optimizer):
            optimizer.step()
        else:
            self.nonfinite_terms = [*getattr(self, "nonfinite_terms", []), f"{which} gradients"]
            log.warning("non-finite %s gradients at step %d; skipping that update", which, self.global_step)
            self.log(f"train/skipped_nonfinite_grad_{which}", 1.0)
        optimizer.zero_grad(set_to_none=True)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Measure (as v2 logs ``grad_norm_g``/``grad_norm_d``) and clip by norm here: Lightning calls this after
        the fp16 scaler unscaled the gradients (right after ``manual_backward`` they would still be scaled)."""
        first = optimizer.param_groups[0]["params"][:1]
        which = "disc" if first and first[0] is next(self.discriminator.parameters()) else "gen"
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            self.log(f"train/grad_norm_{which}", torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g.detach().float()) for g in grads])), batch_size=1)
        if self.hparams.grad_clip_norm:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.grad_clip_norm, gradient_clip_algorithm="norm"
            )

    @staticmethod
    def _grads_finite(optimizer) -> bool:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return True
        # one reduction instead of one host sync per parameter
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

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
        content = self._content(batch)
        for i in range(min(self.hparams.num_val_samples, content.shape[0])):
            frames, phones = int(batch["spec_lengths"][i]), int(batch["text_lengths"][i])
            if self.content_source == "encodec":
                own = content[i : i + 1, : int(batch["content_code_lengths"][i])]
            else:
                own = content[i : i + 1, :, :frames]
            generated = self.net.decode(
                self.net.extract_latent(own),
                batch["text"][i : i + 1, :phones],
                batch["spec"][i : i + 1, :, :frames],
                noise_scale=0.5,
                **self._conditioning(batch, slice(i, i + 1)),
            )[0, 0].float()
            real = batch["wav"][i, 0, : frames * HOP].float()
            mcd.append(mel_cepstral_distortion(generated, real))
            mrstft.append(multi_resolution_stft_distance(generated, real))
            key = batch["keys"][i] if "keys" in batch else f"val_{i}"
            self.validation_audio.append({"key": key, "real": real.cpu(), "generated": generated.cpu()})
        if mcd:
            self.log("val/mcd_db", sum(mcd) / len(mcd), sync_dist=True)
            self.log("val/mrstft", sum(mrstft) / len(mrstft), sync_dist=True)


def _scaler_found_inf(scaler: Any, optimizer: Any) -> bool:
    """Whether the GradScaler's ``step`` found inf/NaN gradients for ``optimizer`` (and so skipped it). The scaler
    keeps that per optimizer until its ``update``; it has no public accessor, hence the private table. Lightning
    hands manual optimization a ``LightningOptimizer`` wrapper; the scaler keys the wrapped optimizer."""
    inner = getattr(optimizer, "optimizer", optimizer)
    state = scaler._per_optimizer_states.get(id(inner), {})
    return any(bool(found.item()) for found in state.get("found_inf_per_device", {}).values())

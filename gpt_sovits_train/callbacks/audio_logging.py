"""Validation audio you can listen to and mel plots you can look at, for any logger.

After each validation the SoVITS module leaves ``validation_audio`` (real and resynthesized waveforms of a few
utterances) and the GPT module its free-running generations voiced by its validation vocoder. This callback
sends them to W&B as audio + images when a W&B logger is attached, and otherwise writes ``.wav`` + ``.png``
files under ``<run dir>/samples/step<N>/``. Generated audio carries the AI-generated metadata like every file
we synthesize.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import matplotlib
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from gpt_sovits_train.audio.ai_metadata import AIMetadata, write_audio_with_ai_metadata
from gpt_sovits_train.audio.spectrogram import mel_spectrogram
from gpt_sovits_train.constants import SAMPLE_RATE

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def mel_comparison_figure(real: torch.Tensor | None, generated: torch.Tensor, title: str):
    """Log-mel spectrograms on one colour scale: real above generated, or the generated one alone (free-running
    GPT samples have no aligned real audio)."""
    pairs = [("real", real), ("generated", generated)] if real is not None else [("generated", generated)]
    mels = [(label, mel_spectrogram(w.reshape(1, -1).float())[0].numpy()) for label, w in pairs]
    low, high = min(m.min() for _, m in mels), max(m.max() for _, m in mels)
    figure, axes = plt.subplots(len(mels), 1, figsize=(8, 2.5 * len(mels)), sharex=True, squeeze=False)
    for axis, (label, mel) in zip(axes[:, 0], mels):
        axis.imshow(mel, origin="lower", aspect="auto", vmin=low, vmax=high, interpolation="none")
        axis.set_ylabel(f"{label}\nmel bin")
    axes[-1, 0].set_xlabel("frame (20 ms)")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


class AudioSampleLogger(Callback):
    """Logs ``pl_module.validation_audio`` after each validation (rank 0 only)."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        samples = getattr(pl_module, "validation_audio", None)
        if not samples or not trainer.is_global_zero or trainer.sanity_checking:
            return
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        step = trainer.global_step
        folder = Path(trainer.default_root_dir) / "samples" / f"step{step:08d}"
        for sample in samples:
            figure = mel_comparison_figure(sample["real"], sample["generated"], f"{sample['key']} @ step {step}")
            if wandb_loggers:
                for logger in wandb_loggers:
                    clips = [("generated (AI)", sample["generated"])]
                    if sample["real"] is not None:
                        clips.insert(0, ("real", sample["real"]))
                    logger.log_audio(
                        key=f"val_audio/{sample['key']}",
                        audios=[clip.numpy() for _, clip in clips],
                        step=step,
                        sample_rate=[SAMPLE_RATE] * len(clips),
                        caption=[caption for caption, _ in clips],
                    )
                    logger.log_image(key=f"val_mel/{sample['key']}", images=[figure], step=step)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                figure.savefig(folder / f"{sample['key']}_mel.png", dpi=80)
                write_audio_with_ai_metadata(
                    folder / f"{sample['key']}_generated.wav",
                    sample["generated"],
                    SAMPLE_RATE,
                    AIMetadata(model=f"{type(pl_module).__name__} step {step}"),
                )
            plt.close(figure)

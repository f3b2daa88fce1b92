"""``train(cfg)``: the one function behind ``gst-train`` — build everything from config, fit, report.

Run length: ``trainer.max_steps`` / ``trainer.max_epochs`` are totals for the whole run. Resuming with
``ckpt_path=...`` restores the step/epoch counters, so training continues to the same total instead of
starting another full budget. ``ckpt_path=last`` picks the newest ``last.ckpt`` of this run's checkpoint dir
(what an auto-requeued job wants); a path that does not exist is an error, not a silent fresh start. Resume
checkpoints are read without executing pickled code (``training.checkpoint_io``); one that holds code is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

import gpt_sovits_train.training.resolvers  # noqa: F401  (registers ${gst_*:} resolvers)
from gpt_sovits_train.callbacks.nan_guard import NonFiniteTrainingError
from gpt_sovits_train.callbacks.preemption import PreemptionCheckpoint
from gpt_sovits_train.interchange.redact import redact, redacted_argv
from gpt_sovits_train.interchange.safe_config import UnsafeConfigError
from gpt_sovits_train.interchange.safe_load import CheckpointReadError, UnsafeCheckpointError
from gpt_sovits_train.training.instantiate import instantiate_callbacks, instantiate_loggers
from gpt_sovits_train.training.run_lock import run_folder_lock

log = logging.getLogger(__name__)

_SPECIAL_CKPT_PATHS = {"last", "best", "hpc"}
#: A file the user pointed at was refused or unreadable: ``gst-train`` prints the one-line message and exits 2.
USER_FILE_ERRORS = (UnsafeCheckpointError, CheckpointReadError, UnsafeConfigError)


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    """Validate the resume target early, with a message that says what to pass instead."""
    if ckpt_path is None or str(ckpt_path) in _SPECIAL_CKPT_PATHS:
        return ckpt_path
    path = Path(str(ckpt_path)).expanduser()
    if "://" not in str(ckpt_path) and not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path} does not exist. Pass a .ckpt written by a previous run "
            "(<run dir>/checkpoints/last.ckpt), ckpt_path=last to resume this run dir's newest one, or ckpt_path=null."
        )
    return str(path) if "://" not in str(ckpt_path) else str(ckpt_path)


def log_resolved_config(cfg: DictConfig, trainer: pl.Trainer) -> dict[str, Any]:
    """Send the fully resolved config to every logger and write it next to the run (rank 0 only), with
    secret-looking values redacted (:mod:`gpt_sovits_train.interchange.redact`)."""
    resolved = redact(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "resolved config and loggers")
    assert isinstance(resolved, dict)
    with redacted_argv():  # W&B starts its run here and records the command line (+hf_token=...) as metadata
        for logger in trainer.loggers:
            logger.log_hyperparams(resolved)
    if trainer.is_global_zero:
        out = Path(trainer.default_root_dir) / "resolved_config.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    return resolved


def _checkpoint_paths(trainer: pl.Trainer) -> tuple[str | None, str | None]:
    """(best by a real metric, newest); the periodic checkpointer "monitors" the step, so it only counts for best
    when no metric-monitoring checkpointer exists."""
    checkpointers = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
    by_metric = [cb for cb in checkpointers if cb.monitor not in (None, "step") and cb.best_model_path]
    best_cb = by_metric[0] if by_metric else next((cb for cb in checkpointers if cb.best_model_path), None)
    last = next((cb.last_model_path for cb in checkpointers if cb.last_model_path), None)
    return (best_cb.best_model_path if best_cb else None), last


def _scalar_metrics(trainer: pl.Trainer) -> dict[str, float]:
    metrics = {}
    for name, value in trainer.callback_metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            metrics[name] = float(value.item())
        elif isinstance(value, (int, float)):
            metrics[name] = float(value)
    return metrics


def weights_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer: equal on all DDP ranks unless replicas drifted apart."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_result(result: dict[str, Any], output_dir: str | Path, rank: int) -> Path:
    """``train_result.json`` (rank 0) / ``train_result.rank<N>.json``: what a scheduler or script reads back."""
    name = "train_result.json" if rank == 0 else f"train_result.rank{rank}.json"
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def finish_wandb_run() -> None:
    """Close the W&B run: otherwise the next job of a multirun sweep in this process would log into it, and an
    offline run's files are only complete after finish."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def save_final_checkpoint(trainer: pl.Trainer) -> None:
    """Make ``last.ckpt`` hold the final weights even when ``max_steps`` ended between periodic saves, so the
    weights a run reports are the ones on disk (and a longer ``max_steps`` resumes from the true end)."""
    checkpointer = next((cb for cb in trainer.checkpoint_callbacks
                         if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath), None)
    if checkpointer is None or checkpointer._last_global_step_saved == trainer.global_step:
        return
    path = Path(checkpointer.dirpath) / f"{checkpointer.CHECKPOINT_NAME_LAST}{checkpointer.FILE_EXTENSION}"
    trainer.save_checkpoint(str(path))
    checkpointer.last_model_path = str(path)
    checkpointer._last_global_step_saved = trainer.global_step


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Instantiate datamodule, model and trainer (with callbacks and loggers) from a composed ``train`` config."""
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    log.info("datamodule <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    log.info("model <%s>", cfg.model._target_)
    model = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"))
    if not loggers and any(isinstance(cb, LearningRateMonitor) for cb in callbacks):
        log.info("no logger (~logger): dropping the learning-rate monitor (it has nowhere to log)")
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def run_folder(cfg: DictConfig) -> Path | None:
    """The folder this run writes (``paths.output_dir``, Hydra's run folder), or None outside a Hydra run."""
    try:
        folder = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=True)
    except Exception:
        return None
    return Path(str(folder)) if folder else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured stage; returns metrics, best/last checkpoint paths, final step and status.

    ``status`` is ``"finished"``; ``"preempted"`` when a SIGTERM/SIGUSR1 stopped the run after writing
    ``preempted_checkpoint``; or ``"diverged"`` when the NaN guard stopped it (``error`` says which loss terms and
    batch went non-finite; ``diverged_checkpoint`` holds the weights at that point). The run folder is locked
    for the duration: a second process training into it is refused (:mod:`~gpt_sovits_train.training.run_lock`).
    """
    folder = run_folder(cfg)
    if folder is None:
        return _train(cfg)
    with run_folder_lock(folder):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, Any]:
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"))  # before building anything: a wrong path fails at once
    datamodule, model, trainer = build(cfg)
    log_resolved_config(cfg, trainer)
    fit_model: Any = torch.compile(model) if cfg.get("compile", False) else model
    status, error = "finished", None
    try:
        # weights_only=True also where a user swapped AtomicCheckpointIO (our safe reader) for another plugin.
        trainer.fit(fit_model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except pickle.UnpicklingError as unpickling:
        raise UnsafeCheckpointError(
            f"refused to resume from {cfg.get('ckpt_path')}: it holds pickled objects that are not plain training "
            "state; nothing was executed. Only resume from checkpoints you trust"
        ) from unpickling
    except SIGTERMException:
        status = "preempted"
    except NonFiniteTrainingError as diverged:
        status, error = "diverged", str(diverged)
    finally:
        finish_wandb_run()
    preemption = next((cb for cb in trainer.callbacks if isinstance(cb, PreemptionCheckpoint)), None)
    if status != "diverged" and preemption is not None and preemption.saved_path is not None:
        status = "preempted"  # (the preemption callback also saves on the guard's exception: that is no preemption)
    if status == "finished" and not trainer.interrupted:
        save_final_checkpoint(trainer)
    best, last = _checkpoint_paths(trainer)
    guard = next((cb for cb in trainer.callbacks if hasattr(cb, "diverged_checkpoint")), None)
    result = {
        "status": status,
        "metrics": _scalar_metrics(trainer),
        "best_checkpoint": best,
        "last_checkpoint": last,
        "preempted_checkpoint": preemption.saved_path if preemption is not None else None,
        "global_step": int(trainer.global_step),
        "current_epoch": int(trainer.current_epoch),
        "strategy": type(trainer.strategy).__name__,
        "world_size": int(trainer.world_size),
        "output_dir": str(trainer.default_root_dir),
        "rank": int(trainer.global_rank),
        "weights_fingerprint": weights_fingerprint(model),
    }
    if guard is not None:
        result["skipped_nonfinite_steps"] = guard.skipped_steps
    if status == "diverged":
        result |= {"error": error, "diverged_checkpoint": getattr(guard, "diverged_checkpoint", None)}
    write_result(result, trainer.default_root_dir, trainer.global_rank)
    return result

"""OmegaConf resolvers the training configs use; registered on import (idempotent)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import OmegaConf


def wandb_offline_default() -> bool:
    """Offline unless the user asked for online or is logged in to W&B (API key in env or ~/.netrc).

    A fresh checkout then never blocks on a login prompt or tries the network, yet a logged-in user's runs sync.
    """
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "disabled", "dryrun"}:
        return True
    if mode == "online":
        return False
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return True


def run_name() -> str:
    """Readable per-run name: the job's overrides in a sweep (``lr=0.001,batch=8``), else the output dir's name."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "run"
    hydra_cfg = HydraConfig.get()
    overrides = hydra_cfg.job.get("override_dirname")
    if overrides:
        from gpt_sovits_train.interchange.redact import redact_override_list

        return redact_override_list(str(overrides))[0]
    return Path(hydra_cfg.runtime.output_dir).name


def register_resolvers() -> None:
    """Make ``${gst_wandb_offline:}`` and ``${gst_run_name:}`` available to configs."""
    OmegaConf.register_new_resolver("gst_wandb_offline", wandb_offline_default, replace=True)
    OmegaConf.register_new_resolver("gst_run_name", run_name, replace=True, use_cache=True)


register_resolvers()

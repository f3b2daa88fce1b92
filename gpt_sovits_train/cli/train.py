"""``gst-train``: compose ``conf/train.yaml`` with command-line overrides and call :func:`train`.

Examples::

    gst-train model=gpt data.shards=artifacts/demo/shards trainer.max_steps=200
    gst-train model=sovits trainer=ddp trainer.devices=8
    gst-train -m hparams_search=lr_batch_grid

User mistakes (shards that do not exist, a resume checkpoint that does not exist, a run folder another process
trains into) end within the first second with one ``error:`` line and exit code 2, before any model is built.
A run the NaN guard stopped ends with its diagnosis and exit code 1.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import gpt_sovits_train.training.resolvers  # noqa: F401  (configs use ${gst_*:} resolvers)

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger(__name__)


def check_shards(cfg: DictConfig) -> None:
    """A local ``data.shards`` must be a prepared dataset (``manifest.json`` inside); remote ones are left to the
    loader (``s3://``, ``pipe:``, or a ``data.shard_url_template``)."""
    shards = cfg.get("data", {}).get("shards")
    if shards is None or "://" in str(shards) or str(shards).startswith("pipe:"):
        return
    if not (Path(str(shards)).expanduser() / "manifest.json").is_file():
        what = "does not exist" if not Path(str(shards)).expanduser().exists() else "has no manifest.json"
        raise FileNotFoundError(
            f"data.shards={shards} {what}: point it at a gst-prepare output_dir (e.g. data.shards=data/shards/my_voice)"
        )


def single_console_for_lightning() -> None:
    """``import lightning`` gives the ``lightning`` logger its own console handler *and* lets its records reach the
    root logger, which Hydra already prints to the console and the run's log file: every Lightning INFO line would
    show twice. Keep Hydra's handlers (console + file) only."""
    if not logging.getLogger().handlers:
        return
    lightning_logger = logging.getLogger("lightning")
    for handler in list(lightning_logger.handlers):
        if type(handler) is logging.StreamHandler:
            lightning_logger.removeHandler(handler)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from gpt_sovits_train.callbacks.preemption import PREEMPTION_EXIT_CODE
    from gpt_sovits_train.training.run import USER_FILE_ERRORS, resolve_ckpt_path, train
    from gpt_sovits_train.training.run_lock import RunFolderInUseError

    single_console_for_lightning()
    try:
        check_shards(cfg)
        resolve_ckpt_path(cfg.get("ckpt_path"))
        result = train(cfg)
    except (FileNotFoundError, RunFolderInUseError, *USER_FILE_ERRORS) as error:  # user mistakes: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    log.info("training result: %s", json.dumps(result, default=str))
    if result["status"] == "preempted":
        sys.exit(PREEMPTION_EXIT_CODE)
    if result["status"] == "diverged":
        print(f"error: {result['error']}", file=sys.stderr)
        sys.exit(1)
    objective = cfg.get("optimized_metric")
    return result["metrics"].get(objective) if objective else None


if __name__ == "__main__":
    main()

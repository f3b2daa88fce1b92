"""``gst-train``: compose ``conf/train.yaml`` with command-line overrides and call :func:`train`.

Examples::

    gst-train model=gpt data.shards=artifacts/demo/shards trainer.max_steps=200
    gst-train model=sovits trainer=ddp trainer.devices=8
    gst-train -m hparams_search=lr_batch_grid
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from gpt_sovits_train.callbacks.preemption import PREEMPTION_EXIT_CODE
    from gpt_sovits_train.training.run import USER_FILE_ERRORS, train

    try:
        result = train(cfg)
    except USER_FILE_ERRORS as error:  # a refused or unreadable checkpoint/config: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    log.info("training result: %s", json.dumps(result, default=str))
    if result["status"] == "preempted":
        sys.exit(PREEMPTION_EXIT_CODE)
    objective = cfg.get("optimized_metric")
    return result["metrics"].get(objective) if objective else None


if __name__ == "__main__":
    main()

"""``gst-prepare``: compose ``conf/prepare.yaml`` with overrides and run data preparation.

Examples::

    gst-prepare input.path=data/demo/demo.list output_dir=artifacts/demo/shards
    gst-prepare prepare/features@features=random_init random_models=artifacts/random_models ...
    gst-prepare ... num_partitions=8 partition=$SLURM_ARRAY_TASK_ID     # one SLURM array task per partition
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.data.prepare import PrepareError, prepare

    try:
        prepare(cfg)
    except PrepareError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

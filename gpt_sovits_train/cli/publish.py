"""``gst-publish``: compose ``conf/publish.yaml``, assemble the upload folder and (unless dry) push it.

The folder holds each stage's weights beside the resolved training config of the run that wrote them (found next
to the checkpoint, as ``gst-train`` leaves it), so the card's usage line rebuilds both networks from the folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="publish")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.inference.loading import network_weights
    from gpt_sovits_train.interchange.hub import (
        RUN_CONFIG,
        TrainingDataSummary,
        prepare_publish_folder,
        publish_folder,
        training_config_beside,
    )

    try:
        configs = {}
        for stage in ("gpt", "sovits"):
            checkpoint = cfg[f"{stage}_checkpoint"]
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(f"{stage}_checkpoint={checkpoint} does not exist")
            configs[stage] = training_config_beside(checkpoint)
            if configs[stage] is None:
                raise ValueError(
                    f"{stage}_checkpoint={checkpoint} has no {RUN_CONFIG} in its run folder: publish a checkpoint "
                    "written by gst-train (<run>/checkpoints/*.ckpt), whose run config the card and synthesis need"
                )
        gpt = network_weights(cfg.gpt_checkpoint, "gpt")
        sovits = network_weights(cfg.sovits_checkpoint, "sovits")
        data = (
            TrainingDataSummary.from_manifest(cfg.dataset_manifest, cfg.data_source)
            if cfg.dataset_manifest
            else TrainingDataSummary(source=cfg.data_source)
        )
        metrics = json.loads(Path(cfg.metrics_json).read_text())["summary"] if cfg.metrics_json else {}
        folder = prepare_publish_folder(cfg.output_dir, gpt, sovits, configs, data, metrics, name=cfg.name)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        _fail(str(error))
    try:
        where = publish_folder(folder, cfg.repo_id, dry_run=cfg.dry_run, private=cfg.private)
    except RuntimeError as error:
        _fail(str(error))
    except Exception as error:
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        _fail(f"upload to {cfg.repo_id} failed ({type(error).__name__}: {reason}); check the network and HF_TOKEN, "
              f"then re-run. The folder is ready at {folder}")
    print(f"{'dry run, folder' if cfg.dry_run else 'published'}: {where}")


if __name__ == "__main__":
    main()

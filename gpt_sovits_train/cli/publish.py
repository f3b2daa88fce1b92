"""``gst-publish``: compose ``conf/publish.yaml``, assemble the upload folder and (unless dry) push it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="publish")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.inference.loading import network_weights
    from gpt_sovits_train.interchange.hub import TrainingDataSummary, prepare_publish_folder, publish_folder

    try:
        gpt = network_weights(cfg.gpt_checkpoint, "gpt")
        sovits = network_weights(cfg.sovits_checkpoint, "sovits")
        data = (
            TrainingDataSummary.from_manifest(cfg.dataset_manifest, cfg.data_source)
            if cfg.dataset_manifest
            else TrainingDataSummary(source=cfg.data_source)
        )
        metrics = json.loads(Path(cfg.metrics_json).read_text())["summary"] if cfg.metrics_json else {}
        resolved = OmegaConf.to_container(cfg, resolve=True)
        folder = prepare_publish_folder(cfg.output_dir, gpt, sovits, resolved, data, metrics, name=cfg.name)
        where = publish_folder(folder, cfg.repo_id, dry_run=cfg.dry_run, private=cfg.private)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{'dry run, folder' if cfg.dry_run else 'published'}: {where}")


if __name__ == "__main__":
    main()

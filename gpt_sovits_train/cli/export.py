"""``gst-export``: compose ``conf/export.yaml`` and write v2 / safetensors files (see that file for examples)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.interchange.export import export_models
    from gpt_sovits_train.interchange.gpt_sovits_v2 import V2FormatError
    from gpt_sovits_train.interchange.safe_load import CheckpointReadError, UnsafeCheckpointError

    try:
        written = export_models(
            cfg.output_dir,
            cfg.name,
            gpt_checkpoint=cfg.gpt_checkpoint,
            sovits_checkpoint=cfg.sovits_checkpoint,
            gpt_heads=cfg.gpt.heads,
            max_sec=cfg.gpt.max_sec,
            sovits_model=OmegaConf.to_container(cfg.sovits.model, resolve=True),
            formats=tuple(cfg.formats),
            resolved_config=OmegaConf.to_container(cfg, resolve=True),
            epoch=cfg.epoch,
            steps=cfg.steps,
        )
    except (ValueError, FileNotFoundError, V2FormatError, CheckpointReadError, UnsafeCheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for kind, path in written.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()

"""``gst-evaluate``: compose ``conf/evaluate.yaml``, synthesize each pair and write the score tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.inference.evaluate import EvalItem, evaluate_pairs, log_wandb_table, read_pairs, write_tables
    from gpt_sovits_train.inference.factory import build_synthesizer
    from gpt_sovits_train.inference.synthesizer import Reference, SamplingSettings

    try:
        items = read_pairs(cfg.pairs)
        synthesizer = build_synthesizer(cfg)
        settings = SamplingSettings(**OmegaConf.to_container(cfg.sampling, resolve=True))

        def synthesize(item: EvalItem):
            reference = Reference(
                item.reference_audio, item.reference_text, item.reference_language or item.language, item.speaker_audio
            )
            result = synthesizer.synthesize(item.text, item.language, reference, settings)
            return result.wav, result.sample_rate

        asr = instantiate(cfg.asr) if cfg.asr else None
        encoder = instantiate(cfg.speaker_encoder) if cfg.speaker_encoder else None
        audio_dir = Path(cfg.output_dir) / "wav" if cfg.save_audio else None
        rows = evaluate_pairs(
            items, synthesize, asr=asr, speaker_encoder=encoder, output_dir=audio_dir, model_name=synthesizer.model_name
        )
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    tables = write_tables(rows, cfg.output_dir)
    if cfg.wandb.enabled:
        import wandb

        with wandb.init(project=cfg.wandb.project, mode=cfg.wandb.mode, job_type="evaluate") as run:
            log_wandb_table(rows, run)
    print(json.dumps(json.loads(tables["json"].read_text())["summary"], indent=1))


if __name__ == "__main__":
    main()

"""``gst-evaluate``: compose ``conf/evaluate.yaml``, synthesize each pair and write the score tables.

``extras.dnsmos=true`` adds DNSMOS quality columns (``speechmos``), ``extras.resemblyzer=true`` a second speaker
similarity (Resemblyzer's GE2E encoder, against the pair's speaker audio or reference clip); both ship their
models inside the pip packages of the ``eval`` extra.
"""

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
    from gpt_sovits_train.audio.io import load_mono
    from gpt_sovits_train.inference.evaluate import (
        EvalItem,
        dnsmos_scores,
        evaluate_pairs,
        log_wandb_table,
        read_pairs,
        resemblyzer_similarity,
        write_tables,
    )
    from gpt_sovits_train.inference.factory import build_synthesizer
    from gpt_sovits_train.inference.synthesizer import Reference, SamplingSettings

    extras: dict[str, dict[str, float]] = {}  # item key -> the optional scores, merged into the rows below

    def score_extras(item: EvalItem, wav, rate: int) -> None:
        scores = dnsmos_scores(wav, rate) if cfg.extras.dnsmos else {}
        if cfg.extras.resemblyzer:
            voice_path = item.speaker_audio or item.reference_audio
            scores["resemblyzer_similarity"] = resemblyzer_similarity(wav, rate, load_mono(voice_path, 16000), 16000)
        extras[item.key] = scores

    try:
        items = read_pairs(cfg.pairs)
        synthesizer = build_synthesizer(cfg)
        settings = SamplingSettings(**OmegaConf.to_container(cfg.sampling, resolve=True))

        def synthesize(item: EvalItem):
            reference = Reference(
                item.reference_audio, item.reference_text, item.reference_language or item.language, item.speaker_audio
            )
            result = synthesizer.synthesize(item.text, item.language, reference, settings)
            score_extras(item, result.wav, result.sample_rate)
            return result.wav, result.sample_rate

        asr = instantiate(cfg.asr) if cfg.asr else None
        encoder = instantiate(cfg.speaker_encoder) if cfg.speaker_encoder else None
        audio_dir = Path(cfg.output_dir) / "wav" if cfg.save_audio else None
        rows = evaluate_pairs(
            items, synthesize, asr=asr, speaker_encoder=encoder, output_dir=audio_dir, model_name=synthesizer.model_name
        )
        for row in rows:
            row.extras.update(extras.get(row.key, {}))
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

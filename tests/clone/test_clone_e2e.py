"""End to end: one demo speaker as a raw noisy recording → voice bundle → synthesized wav.

Real parts throughout: pocketsphinx (its wheel ships an English model) transcribes, the real prepare
pipeline builds shards with small random-initialized HuBERT/BERT models, both stages train briefly with
the tiny network presets through ``train(cfg)``, and the inference factory synthesizes from the bundle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits_train.clone.bundle import load_bundle
from gpt_sovits_train.clone.workflow import CloneWorkflow, compose_config


def hydra_list(items: list[str]) -> str:
    """A Hydra list override value; each item quoted because it holds '=', '/' or '~'."""
    return "[" + ",".join(f"'{item}'" for item in items) + "]"


def stage_recipe(stage: str) -> str:
    """Tiny network, a handful of steps, no W&B, no progress bars: a smoke-sized few-shot run."""
    return hydra_list([
        f"model/{stage}@model.net=tiny", "trainer=cpu", "trainer.max_steps=4", "trainer.max_epochs=-1",
        "logger=csv", "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "data.num_workers=0",
        "trainer.log_every_n_steps=1", *(["model.discriminator.max_channels=64"] if stage == "sovits" else []),
    ])


def clone_overrides(tmp_path: Path, recording: Path, models: dict[str, Path]) -> list[str]:
    prepare = hydra_list([
        "prepare/features@features=random_init", f"random_models={tmp_path / 'random_models'}", "progress=false",
        "split.val_min_per_speaker=1", "shards.utterances_per_chunk=64",
    ])
    return [
        "voice_name=ava", f"inputs=[{recording}]", f"work_dir={tmp_path / 'ava'}", f"paths.output_dir={tmp_path}",
        "clone/asr=pocketsphinx", "clone/denoise=spectral_gate",
        f"features.ssl={models['ssl']}", f"features.bert={models['bert']}",
        f"prepare.overrides={prepare}",
        f"train.sovits.overrides={stage_recipe('sovits')}", f"train.gpt.overrides={stage_recipe('gpt')}",
    ]


@pytest.mark.slow
def test_clone_to_a_fine_tuned_gpt_stage(tmp_path: Path, raw_recording) -> None:
    """Slice, transcribe, prepare, fine-tune the GPT stage and pick a reference (no SoVITS stage needed)."""
    pytest.importorskip("pocketsphinx")
    from gpt_sovits_train.features.random_init import make_all

    recording, texts = raw_recording
    models = make_all(tmp_path / "random_models", seed=0)
    cfg = compose_config("clone", [*clone_overrides(tmp_path, recording, models),
                                   "skip=[train_sovits,bundle,sample]"])
    summary = CloneWorkflow(cfg).run()
    assert summary["steps"]["train_gpt"] == "ran" and summary["steps"]["prepare"] == "ran"
    assert summary["data"]["kept_segments"] == len(texts)
    losses = {k: v for k, v in summary["losses"]["gpt"].items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values())
    manifest = json.loads((tmp_path / "ava" / "shards" / "manifest.json").read_text())
    assert manifest["written"] == summary["transcribed_segments"]
    checkpoint = json.loads((tmp_path / "ava" / "steps" / "train_gpt.done.json").read_text())["result"]["checkpoint"]
    assert Path(checkpoint).is_file()


@pytest.mark.slow
def test_clone_demo_speaker_end_to_end(tmp_path: Path, raw_recording) -> None:
    pytest.importorskip("pocketsphinx")
    from gpt_sovits_train.features.random_init import make_all

    recording, texts = raw_recording
    models = make_all(tmp_path / "random_models", seed=0)
    cfg = compose_config("clone", [
        *clone_overrides(tmp_path, recording, models),
        "sample.text=The river runs behind the mill.", "sample.language=en", "+sample.sampling.max_seconds=4",
    ])
    summary = CloneWorkflow(cfg).run()

    assert all(state == "ran" for state in summary["steps"].values()), summary["steps"]
    assert summary["data"]["kept_segments"] == len(texts)
    for stage in ("sovits", "gpt"):
        losses = {k: v for k, v in summary["losses"][stage].items() if "loss" in k}
        assert losses and all(math.isfinite(v) for v in losses.values())

    bundle = load_bundle(summary["bundle"]["bundle"])
    assert bundle.reference_text and 3.0 <= sf.info(bundle.reference_audio).duration <= 10.0
    assert bundle.features["ssl"]["model"] == str(models["ssl"])
    index = json.loads((bundle.root / "voice.json").read_text())
    assert index["training_summary"]["data"]["kept_segments"] == len(texts)

    wav, rate = sf.read(summary["sample"]["wav"])
    assert rate == 32000 and wav.size > 0 and np.isfinite(wav).all()

    # Re-running resumes every step from its marker instead of training again.
    again = CloneWorkflow(cfg).run()
    assert set(again["steps"].values()) == {"resumed"}

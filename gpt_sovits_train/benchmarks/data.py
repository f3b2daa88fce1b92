"""Data pipeline throughput: preparation (utterances/s, audio seconds/s) and DataModule loading (samples/s).

Both run on the bundled demo corpus with the random-init extractors (same code and layer shapes as the real
ones, but 2-layer HuBERT / 3-layer BERT, so preparation figures are an upper bound for the real models,
whose cost is dominated by the 12-layer HuBERT and 24-layer BERT).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch

from gpt_sovits_train.data.datamodule import GPTDataModule, SoVITSDataModule
from gpt_sovits_train.data.prepare import compose_config, prepare
from gpt_sovits_train.features.random_init import RandomSemanticQuantizer, make_all
from gpt_sovits_train.features.semantic import LatentCodeExtractor

DEMO_LIST = Path(__file__).resolve().parents[2] / "data" / "demo" / "demo.list"


def _subset(folder: Path, count: int | None) -> Path:
    lines = DEMO_LIST.read_text(encoding="utf-8").splitlines()
    lines = lines if count is None else lines[: count // 2] + lines[len(lines) // 2 : len(lines) // 2 + count // 2]
    absolute = [f"{DEMO_LIST.parent / line.split('|', 1)[0]}|{line.split('|', 1)[1]}" for line in lines]
    path = folder / "bench.list"
    path.write_text("\n".join(absolute) + "\n", encoding="utf-8")
    return path


def _prepare(folder: Path, count: int | None, with_text_features: bool) -> tuple[Path, dict, float]:
    models = folder / "models"
    make_all(models, seed=0)
    overrides = [
        "prepare/features@features=random_init",
        f"random_models={models}",
        f"input.path={_subset(folder, count)}",
        f"output_dir={folder / 'shards'}",
        "progress=false",
        f"threads_per_worker={torch.get_num_threads()}",
    ]
    if not with_text_features:
        overrides += ["features.bert=null", "features.speaker=null"]
    cfg = compose_config(overrides)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # keep the bench's stdout pure JSON (prepare prints a summary)
        manifest = prepare(cfg)
    return folder / "shards", manifest, time.perf_counter() - start


def run_prepare(quick: bool = False) -> dict:
    """End-to-end preparation of the demo corpus (decode, clean, phonemize, HuBERT, BERT, ECAPA, write shards)."""
    with tempfile.TemporaryDirectory() as tmp:
        _, manifest, seconds = _prepare(Path(tmp), 4 if quick else None, with_text_features=True)
    audio_seconds = manifest["hours"] * 3600.0
    return {
        "utterances": manifest["written"],
        "audio_seconds": round(audio_seconds, 2),
        "wall_seconds": round(seconds, 3),
        "utterances_per_s": round(manifest["written"] / seconds, 3),
        "audio_seconds_per_s": round(audio_seconds / seconds, 3),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "note": "random-init 2-layer HuBERT / 3-layer BERT / narrow ECAPA; includes extractor loading",
    }


def _time_epochs(module, epochs: int) -> tuple[int, int, float]:
    module.setup()
    samples = batches = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in module.train_dataloader():
            samples += len(batch["keys"])
            batches += 1
    return samples, batches, time.perf_counter() - start


def run_datamodule(quick: bool = False) -> dict:
    """Samples/s through the SoVITS and GPT DataModules (shard read, FLAC decode, spectrograms, collation)."""
    with tempfile.TemporaryDirectory() as tmp:
        shards, manifest, _ = _prepare(Path(tmp), 8 if quick else 40, with_text_features=False)
        epochs = 1 if quick else 3
        workers = 0 if quick else 2
        batching = {"max_tokens": 4000, "max_batch_size": 16, "max_item_length": 1500, "window": 256}
        sovits = SoVITSDataModule(str(shards), batching=batching, num_workers=workers)
        s_samples, s_batches, s_seconds = _time_epochs(sovits, epochs)
        gpt = GPTDataModule(str(shards), batching=batching, num_workers=workers,
                            semantic_extractor=LatentCodeExtractor(RandomSemanticQuantizer()))
        g_samples, g_batches, g_seconds = _time_epochs(gpt, epochs)
    return {
        "train_samples": manifest["splits"]["train"]["count"],
        "epochs": epochs,
        "num_workers": workers,
        "sovits_samples_per_s": round(s_samples / s_seconds, 2),
        "sovits_batches_per_s": round(s_batches / s_seconds, 2),
        "gpt_samples_per_s": round(g_samples / g_seconds, 2),
        "gpt_batches_per_s": round(g_batches / g_seconds, 2),
    }

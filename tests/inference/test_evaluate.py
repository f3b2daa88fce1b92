"""Evaluation metrics on real (random-init) ASR and ECAPA models, and the exported tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits_train.audio.asr import TransformersASR
from gpt_sovits_train.features.speaker import EcapaSpeakerEncoder
from gpt_sovits_train.inference.evaluate import (
    EvalItem,
    evaluate_pairs,
    objective_measures,
    read_pairs,
    score_audio,
    text_error_rates,
    write_tables,
)


def test_error_rates_known_values() -> None:
    assert text_error_rates("Hello, world!", "hello world", "en") == {"cer": 0.0, "wer": 0.0}
    rates = text_error_rates("hello word", "hello world", "en")
    assert rates["wer"] == pytest.approx(0.5)
    assert rates["cer"] == pytest.approx(1 / 10)
    zh = text_error_rates("你好世", "你好，世界。", "zh")
    assert zh["cer"] == pytest.approx(0.25) and zh["wer"] == zh["cer"]
    with pytest.raises(ValueError, match="empty"):
        text_error_rates("x", "!!", "en")


def test_objective_measures_flag_clipping_and_silence() -> None:
    t = np.arange(32000) / 32000
    loud = np.clip(2.0 * np.sin(2 * np.pi * 220 * t), -1, 1)
    measures = objective_measures(loud, 32000)
    assert measures["clipping_ratio"] > 0.3
    quiet = np.concatenate([0.3 * np.sin(2 * np.pi * 220 * t[:16000]), np.zeros(16000)])
    assert objective_measures(quiet, 32000)["silence_ratio"] == pytest.approx(0.5, abs=0.02)


def test_evaluate_pairs_with_random_models(tmp_path: Path, tiny_asr_dir: Path, random_feature_models) -> None:
    rate = 32000
    t = np.arange(rate * 2) / rate
    ref = (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    ref_path = tmp_path / "ref.wav"
    sf.write(ref_path, ref, rate)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"key": "a", "text": "hello there", "language": "en", "reference_audio": str(ref_path)}) + "\n"
    )
    items = read_pairs(pairs)
    asr = TransformersASR(str(tiny_asr_dir), language="en")
    encoder = EcapaSpeakerEncoder(random_feature_models["speaker"], device="cpu")

    def replay_reference(item: EvalItem) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(sf.read(item.reference_audio, dtype="float32")[0]), rate

    rows = evaluate_pairs(items, replay_reference, asr=asr, speaker_encoder=encoder, output_dir=tmp_path / "wav")
    assert len(rows) == 1
    row = rows[0]
    assert row.speaker_similarity == pytest.approx(1.0, abs=1e-4)  # same audio -> identical embeddings
    assert row.cer >= 0.0 and math.isfinite(row.wer) and row.rtf > 0
    tables = write_tables(rows, tmp_path / "tables")
    data = json.loads(tables["json"].read_text())
    assert data["rows"][0]["key"] == "a" and "mean_cer" in data["summary"]
    assert "speaker_similarity" in tables["csv"].read_text().splitlines()[0]
    other = score_audio(items[0], np.random.default_rng(0).normal(0, 0.1, rate), rate, speaker_encoder=encoder)
    assert other.speaker_similarity < 0.9999


def test_read_pairs_reports_missing_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: missing fields"):
        read_pairs(path)


@pytest.mark.slow  # 40 s on 2 loaded cores (CLI subprocess or training run)
def test_wandb_table_offline(tmp_path: Path, monkeypatch) -> None:
    import wandb

    from gpt_sovits_train.inference.evaluate import EvalRow, log_wandb_table

    monkeypatch.setenv("WANDB_MODE", "offline")
    rows = [EvalRow(key="a", text="hi", cer=0.5, wer=1.0, extras={"peak": 0.3})]
    with wandb.init(project="gst-test", dir=str(tmp_path), mode="offline") as run:
        log_wandb_table(rows, run)
        assert run.summary["evaluation/mean_cer"] == pytest.approx(0.5)

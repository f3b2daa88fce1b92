"""Raw recording → segment files, with dropped time accounted for by reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits_train.clone.curate import SegmentRules, curate_recordings
from gpt_sovits_train.clone.denoise import SpectralGateDenoiser

SR = 44100  # an input rate the pipeline must convert from


def tone(seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return amp * (np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 300 * t))


def test_curate_keeps_good_segments_and_reports_drops(tmp_path: Path) -> None:
    gap = np.zeros(round(1.5 * SR))
    clipped = np.clip(tone(3.0, amp=1.5), -1.0, 1.0)
    track = np.concatenate([gap, tone(4.0), gap, tone(0.6), gap, clipped, gap, tone(6.0), gap])
    track = track + 0.002 * np.random.default_rng(0).standard_normal(track.size)
    stereo = np.stack([track, track], axis=1).astype(np.float32)
    src = tmp_path / "raw.flac"
    sf.write(src, stereo, SR)

    report = curate_recordings([src], tmp_path / "segments", denoiser=SpectralGateDenoiser(), voice_name="me")
    summary = report.summary()
    assert [s.dropped for s in report.segments] == [None, "too_short", "clipped", None]
    assert summary["kept_segments"] == 2
    assert summary["kept_minutes"] == pytest.approx((4.2 + 6.2) / 60, abs=0.01)
    assert set(summary["dropped_minutes_by_reason"]) == {"too_short", "clipped"}
    for seg in report.kept:
        wav, rate = sf.read(seg.path)
        assert rate == 32000 and wav.ndim == 1
        assert abs(len(wav) / rate - seg.seconds) < 0.01
        level = 10 * np.log10(np.mean(wav**2))
        assert -23 < level < -17  # normalized near the -20 dBFS target
    report.save(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["summary"] == summary


def test_curate_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inputs="):
        curate_recordings([], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing\.wav"):
        curate_recordings([tmp_path / "missing.wav"], tmp_path)
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="ffmpeg"):
        curate_recordings([tmp_path / "junk.wav"], tmp_path, rules=SegmentRules())

"""Reference-clip selection: pitch estimate and the choice among candidates."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_sovits_train.clone.reference import ClipStats, analyze_clip, estimate_f0, select_reference

SR = 32000


def voiced(f0: float, seconds: float, noise: float = 0.0, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone (first five partials) with optional white noise: a crude voiced vowel."""
    t = np.arange(round(seconds * SR)) / SR
    wav = sum(amp / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6))
    # Short pauses make the SNR estimate meaningful, as in real speech.
    gate = (np.sin(2 * np.pi * 0.7 * t) > -0.8).astype(float)
    wav = wav * gate + noise * np.random.default_rng(seed).standard_normal(t.size)
    return wav.astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 220.0, 310.0])
def test_estimate_f0_recovers_tone_pitch(f0: float) -> None:
    track = estimate_f0(voiced(f0, 1.5), SR)
    assert np.mean(track > 0) > 0.6
    assert abs(np.median(track[track > 0]) - f0) / f0 < 0.03


def test_estimate_f0_calls_noise_unvoiced() -> None:
    noise = 0.1 * np.random.default_rng(1).standard_normal(SR)
    assert np.mean(estimate_f0(noise, SR) > 0) < 0.1


def test_selects_typical_pitch_clean_unclipped_clip() -> None:
    clips = {
        "typical_clean": voiced(200, 5.0),
        "typical_noisy": voiced(200, 5.0, noise=0.05, seed=2),
        "high_pitch": voiced(320, 5.0),
        "too_short": voiced(200, 2.0),
        "clipped": np.clip(voiced(200, 5.0, amp=2.0), -1.0, 1.0),
        "median_pull_a": voiced(195, 11.0),  # too long, but it counts toward the speaker median
        "median_pull_b": voiced(205, 12.0),
    }
    stats = [analyze_clip(key, wav, SR, text="hello") for key, wav in clips.items()]
    chosen, table = select_reference(stats)
    assert chosen.key == "typical_clean"
    ineligible = {row["key"]: row["ineligible"] for row in table}
    assert ineligible["too_short"] == ["duration"]
    assert "clipped" in ineligible["clipped"]
    assert ineligible["high_pitch"] == []
    costs = {row["key"]: row["cost"] for row in table}
    assert costs["typical_clean"] < costs["typical_noisy"]
    assert costs["typical_clean"] < costs["high_pitch"]


def test_falls_back_to_least_bad_clip_when_none_is_eligible() -> None:
    stats = [
        ClipStats("a", 2.2, 180.0, 0.8, 30.0, 0.0, True),
        ClipStats("b", 2.5, 180.0, 0.8, 30.0, 0.0, False),
    ]
    chosen, table = select_reference(stats)
    assert chosen.key == "a" and table[0]["ineligible"] == ["duration"]


def test_empty_candidate_list_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="kept no segment"):
        select_reference([])

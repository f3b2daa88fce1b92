"""Segment boundaries on synthetic tones with silences at known places."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_sovits_train.clone.segment import EnergyVAD, Span, pack_regions

SR = 16000


def tone_track(layout: list[tuple[str, float]], noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, list[Span]]:
    """Build ``[("tone", 3.0), ("gap", 1.0), ...]`` as audio; return it and the true tone spans."""
    rng = np.random.default_rng(seed)
    parts, truth, cursor = [], [], 0
    for kind, seconds in layout:
        n = round(seconds * SR)
        if kind == "tone":
            t = np.arange(n) / SR
            # Two partials with a slow wobble: closer to voiced speech than a pure sine.
            parts.append(0.3 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 360 * t + 0.5 * np.sin(t)))
            truth.append(Span(cursor, cursor + n))
        else:
            parts.append(np.zeros(n))
        cursor += n
    wav = np.concatenate(parts)
    if noise:
        wav = wav + noise * rng.standard_normal(wav.size)
    return wav.astype(np.float32), truth


@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_energy_vad_finds_tone_boundaries(noise: float) -> None:
    wav, truth = tone_track([("gap", 0.5), ("tone", 3.0), ("gap", 1.5), ("tone", 4.0), ("gap", 2.0), ("tone", 2.5)],
                            noise=noise)
    found = EnergyVAD()(wav, SR)
    assert len(found) == len(truth)
    tolerance = 0.03 * SR  # 30 ms: about one frame either side
    for got, want in zip(found, truth):
        assert abs(got.start - want.start) <= tolerance
        assert abs(got.end - want.end) <= tolerance


def test_energy_vad_bridges_short_pauses_and_drops_blips() -> None:
    wav, _ = tone_track([("gap", 0.5), ("tone", 2.0), ("gap", 0.1), ("tone", 2.0), ("gap", 1.0), ("tone", 0.05),
                         ("gap", 1.0)])
    found = EnergyVAD(min_silence_ms=300, min_speech_ms=150)(wav, SR)
    assert len(found) == 1  # the 100 ms pause is closed, the 50 ms blip dropped
    assert abs(found[0].start - 0.5 * SR) <= 0.03 * SR
    assert abs(found[0].end - 4.6 * SR) <= 0.03 * SR


def test_pack_merges_short_neighbours_and_drops_isolated_short() -> None:
    wav, _ = tone_track([("tone", 1.2), ("gap", 0.4), ("tone", 1.5), ("gap", 3.0), ("tone", 5.0), ("gap", 3.0),
                         ("tone", 0.8), ("gap", 3.0)])
    regions = EnergyVAD()(wav, SR)
    kept, short = pack_regions(regions, wav, SR, min_seconds=2.0, max_seconds=12.0, pad_seconds=0.1)
    # 1.2 + 0.4 + 1.5 s merged, padded only at its end (it starts the file); 5 s padded both sides.
    assert [round(s.seconds(SR), 1) for s in kept] == [3.2, 5.2]
    assert len(short) == 1 and round(short[0].seconds(SR), 1) == 1.0
    # Padding never leaves the recording.
    assert kept[0].start == 0


def test_pack_does_not_merge_across_long_pauses() -> None:
    wav, _ = tone_track([("tone", 1.5), ("gap", 2.0), ("tone", 1.5)])
    kept, short = pack_regions(EnergyVAD()(wav, SR), wav, SR, max_merge_gap_seconds=0.8)
    assert kept == [] and len(short) == 2


def test_pack_splits_long_speech_at_the_quiet_dip() -> None:
    # 7 s + a 150 ms dip (too short to be a pause for the VAD) + 9 s: one 16 s region.
    wav, _ = tone_track([("tone", 7.0), ("gap", 0.15), ("tone", 9.0)])
    regions = EnergyVAD(min_silence_ms=300)(wav, SR)
    assert len(regions) == 1
    kept, short = pack_regions(regions, wav, SR, max_seconds=12.0, pad_seconds=0.0)
    assert short == [] and len(kept) == 2
    assert all(s.seconds(SR) <= 12.0 for s in kept)
    cut = kept[0].end
    assert 7.0 * SR <= cut <= 7.15 * SR  # the cut lands inside the dip, not mid-tone
    assert kept[1].start == cut and abs(kept[-1].end - len(wav)) <= 0.03 * SR


def test_pack_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="min_seconds"):
        pack_regions([], np.zeros(10), SR, min_seconds=5, max_seconds=3)


def test_silero_vad_finds_demo_speech_between_silences() -> None:
    pytest.importorskip("silero_vad")
    from pathlib import Path

    import soundfile as sf

    from gpt_sovits_train.clone.segment import SileroVAD

    demo = Path(__file__).resolve().parents[2] / "data" / "demo" / "ava"
    clips = [sf.read(demo / f"ava_00{i}.flac", dtype="float32") for i in (0, 1)]
    rate = clips[0][1]
    gap = np.zeros(2 * rate, dtype=np.float32)
    wav = np.concatenate([gap, clips[0][0], gap, clips[1][0], gap])
    found = SileroVAD(min_silence_ms=500)(wav, rate)
    assert len(found) == 2
    first_end = 2 * rate + len(clips[0][0])
    assert abs(found[0].start - 2 * rate) < 0.3 * rate and abs(found[0].end - first_end) < 0.3 * rate
    assert found[1].start > first_end + rate

"""Segment boundaries on synthetic tones with silences at known places."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_sovits_train.audio.segment import EnergyVAD, Span, pack_regions

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

    from gpt_sovits_train.audio.segment import SileroVAD

    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "ava"
    clips = [sf.read(demo / f"ava_00{i}.flac", dtype="float32") for i in (0, 1)]
    rate = clips[0][1]
    gap = np.zeros(2 * rate, dtype=np.float32)
    wav = np.concatenate([gap, clips[0][0], gap, clips[1][0], gap])
    found = SileroVAD(min_silence_ms=500)(wav, rate)
    assert len(found) == 2
    first_end = 2 * rate + len(clips[0][0])
    assert abs(found[0].start - 2 * rate) < 0.3 * rate and abs(found[0].end - first_end) < 0.3 * rate
    assert found[1].start > first_end + rate


# ---------------------------------------------------------------- files sliced without being decoded whole


def long_layout(minutes: float, seed: int = 1) -> list[tuple[str, float]]:
    """Tones of 1-9 s between pauses of 0.4-1.5 s, one 18 s tone with a 150 ms dip (it must be split) and one
    isolated 0.5 s blip (too short to keep, too far from its neighbours to merge)."""
    rng = np.random.default_rng(seed)
    layout: list[tuple[str, float]] = [("gap", 0.7), ("tone", 8.0), ("gap", 0.15), ("tone", 10.0), ("gap", 2.0),
                                       ("tone", 0.5), ("gap", 2.0)]
    while sum(seconds for _, seconds in layout) < minutes * 60:
        layout += [("tone", round(float(rng.uniform(1.0, 9.0)), 2)), ("gap", round(float(rng.uniform(0.4, 1.5)), 2))]
    return layout


def write_track(path, wav: np.ndarray, channels: int = 1) -> None:
    import soundfile as sf

    data = wav if channels == 1 else np.stack([wav] * channels, axis=1)
    sf.write(path, data, SR, subtype="PCM_16")


@pytest.mark.parametrize("block_seconds", [0.0107, 1.0, 7.3])
def test_streamed_levels_equal_the_levels_of_the_whole_signal(tmp_path, block_seconds: float) -> None:
    import soundfile as sf

    from gpt_sovits_train.audio.segment import FrameLevels, stream_levels

    wav, _ = tone_track([("gap", 0.5), ("tone", 3.0), ("gap", 1.0), ("tone", 2.0)], noise=0.003)
    write_track(tmp_path / "stereo.wav", wav, channels=2)
    decoded = sf.read(tmp_path / "stereo.wav", dtype="float32")[0].mean(axis=1)
    frame, hop = EnergyVAD().frame_and_hop(SR)
    streamed, rate, stats = stream_levels(tmp_path / "stereo.wav", frame, hop, round(block_seconds * SR))
    whole = FrameLevels.of(decoded, frame, hop)
    assert rate == SR and streamed.num_samples == whole.num_samples == len(wav)
    assert streamed.db.shape == whole.db.shape
    np.testing.assert_allclose(streamed.db, whole.db, atol=1e-6)
    assert stats.blocks == -(-len(wav) // max(round(block_seconds * SR), frame))


def test_a_long_file_is_sliced_in_blocks_at_its_pauses_and_nothing_is_lost(tmp_path) -> None:
    import tracemalloc

    from gpt_sovits_train.audio.segment import plan_file_slices, read_span, spans_between

    layout = long_layout(minutes=3)
    wav, tones = tone_track(layout, noise=0.003)
    path = tmp_path / "lecture.wav"
    write_track(path, wav)
    decoded_bytes = wav.size * 4  # float32, what decoding the whole file would hold at least
    tracemalloc.start()
    plan = plan_file_slices(path, EnergyVAD(), block_seconds=5.0, min_seconds=2.0, max_seconds=12.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Bounded work and memory: the file was read in fixed blocks, never whole.
    assert plan.stats.blocks == -(-wav.size // (5 * SR)) and plan.stats.largest_block == 5 * SR
    assert peak < decoded_bytes / 4, f"{peak} bytes traced for a {decoded_bytes}-byte recording"

    # Every clip is within the policy; every boundary sits in a pause (or in the dip of the 18 s tone).
    assert plan.clips and all(2.0 * SR <= clip.length <= 12.0 * SR for clip in plan.clips)
    dip = Span(tones[0].end, tones[1].start)
    for clip in plan.clips:
        for boundary in (clip.start, clip.end):
            inside = [t for t in tones if t.start + 0.03 * SR < boundary < t.end - 0.03 * SR]
            assert not inside, f"boundary {boundary / SR:.2f} s cuts the tone {inside[0]}"
    assert any(dip.start - 0.02 * SR <= clip.end <= dip.end + 0.02 * SR for clip in plan.clips)

    # Nothing silently dropped: each tone lies in a kept clip or a reported too-short span, and the gaps left
    # between all of them hold only the pauses.
    reported = plan.clips + plan.too_short
    for tone_span in tones:
        assert any(s.start <= tone_span.start + 0.03 * SR and tone_span.end - 0.03 * SR <= s.end
                   for s in reported), f"tone {tone_span} is in no clip and not reported"
    blip = tones[2]
    assert any(s.start <= blip.start and blip.end <= s.end for s in plan.too_short)  # reported, not kept
    assert all(s.length < 2.0 * SR for s in plan.too_short)
    pauses = list(spans_between(plan.num_samples, reported))
    covered = sum(s.length for s in reported) + sum(p.length for p in pauses)
    assert covered == plan.num_samples  # no overlaps: clips, short spans and pauses tile the file
    for pause in pauses:
        assert float(np.abs(wav[pause.start : pause.end]).max()) < 0.05  # noise only, no tone

    clip = plan.clips[3]
    np.testing.assert_allclose(read_span(path, clip)[0], wav[clip.start : clip.end], atol=1 / 32767)


def test_streamed_and_in_memory_slicing_agree() -> None:
    """One slicer: the cloning workflow's in-memory call and the streamed plan find the same regions."""
    from gpt_sovits_train.audio.segment import FrameLevels

    wav, _ = tone_track(long_layout(minutes=1, seed=3), noise=0.003)
    vad = EnergyVAD()
    frame, hop = vad.frame_and_hop(SR)
    assert vad.regions(FrameLevels.of(wav, frame, hop), SR) == vad(wav, SR)
    kept, _short = pack_regions(vad(wav, SR), wav, SR, max_seconds=12.0)
    assert all(s.length <= 12 * SR for s in kept) and kept

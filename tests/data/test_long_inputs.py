"""Long recordings in gst-prepare: one without a transcript is streamed through the slicer, each clip transcribed
(pocketsphinx, offline) and prepared, every second accounted for; one with a single transcript stays refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits_train.data.prepare import PrepareError, prepare

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "ava"
RATE = 32000


def build_recording(path: Path) -> dict[str, tuple[float, float]]:
    """Two demo sentences and a 0.4 s tone blip between pauses, over a faint noise floor; returns where the sound
    of each is (seconds)."""
    rng = np.random.default_rng(0)
    first, _ = sf.read(DEMO / "ava_000.flac", dtype="float32")
    second, _ = sf.read(DEMO / "ava_001.flac", dtype="float32")
    blip = (0.3 * np.sin(2 * np.pi * 200 * np.arange(int(0.4 * RATE)) / RATE)).astype(np.float32)
    layout = [("gap", 1.0), ("first", first), ("gap", 1.5), ("blip", blip), ("gap", 1.5), ("second", second),
              ("gap", 1.0)]
    parts, where, cursor = [], {}, 0
    for name, part in layout:
        samples = np.zeros(int(part * RATE), dtype=np.float32) if name == "gap" else part
        if name != "gap":  # where the sound is: the demo files carry some silence of their own
            loud = np.flatnonzero(np.abs(samples) > 0.02)
            where[name] = ((cursor + loud[0]) / RATE, (cursor + loud[-1] + 1) / RATE)
        parts.append(samples)
        cursor += len(samples)
    wav = np.concatenate(parts) + 0.0005 * rng.standard_normal(cursor).astype(np.float32)
    sf.write(path, wav, RATE, subtype="PCM_16")
    return where


def slicing_overrides(*extra: str) -> list[str]:
    return ["audio.slice_long_inputs=true", "clone/asr@input.asr=pocketsphinx", "input.language=en",
            "audio.slice.block_seconds=2", "split.val_fraction=0",
            "split.val_min_per_speaker=0", *extra]


def test_an_untranscribed_recording_is_sliced_in_blocks_and_every_second_is_reported(
    tmp_path, random_models, make_prepare_config, capsys
):
    pytest.importorskip("pocketsphinx")
    corpus = tmp_path / "corpus" / "ava"
    corpus.mkdir(parents=True)
    where = build_recording(corpus / "untranscribed.flac")
    # The same audio three times (38 s, over the 30 s clip policy) with one transcript: it cannot be sliced
    # without breaking the text alignment.
    sf.write(corpus / "talk.flac", np.tile(sf.read(corpus / "untranscribed.flac", dtype="float32")[0], 3), RATE)
    (corpus / "talk.txt").write_text("Everything said in the whole recording, as one line.", encoding="utf-8")
    out = tmp_path / "out"

    manifest = prepare(make_prepare_config(corpus.parent, out, random_models, *slicing_overrides()))

    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    talk = [s for s in skipped if Path(s["source"]).name == "talk.flac"]
    assert [s["reason"] for s in talk] == ["too_long"] and "slice_long_inputs" in talk[0]["detail"]

    sliced = manifest["sliced"]
    report = sliced["recordings"][0]
    assert sliced["inputs"] == 1 and report["source"].endswith("untranscribed.flac")
    seconds = sf.info(corpus / "untranscribed.flac").duration
    assert report["seconds"] == pytest.approx(seconds, abs=1e-3)
    assert report["blocks_read"] == math.ceil(seconds / 2)  # streamed in 2 s blocks, never decoded whole
    # Nothing silently dropped: written clips + left-out spans + pauses add up to the recording.
    left_out = sum(span["end"] - span["start"] for span in report["left_out"])
    assert report["clip_seconds"] + left_out + report["pause_seconds"] == pytest.approx(seconds, abs=0.01)
    # The blip is reported as a left-out span, in skipped.jsonl too.
    blip_start, blip_end = where["blip"]
    short = [s for s in report["left_out"] if s["reason"] == "slice_too_short"]
    assert len(short) == 1 and short[0]["start"] <= blip_start and blip_end <= short[0]["end"]
    assert sum(s["reason"] == "slice_too_short" for s in skipped) == 1

    # Both sentences became samples whose clip boundaries lie in the pauses around them.
    records = [json.loads(line) for line in (out / "train.index.jsonl").read_text().splitlines()]
    assert manifest["written"] == report["clips"] == len(records) == 2
    for record, name in zip(sorted(records, key=lambda r: r["span"][0]), ("first", "second")):
        start, end = where[name]
        assert start - 0.5 < record["span"][0] <= start and end <= record["span"][1] < end + 0.5
        assert record["duration"] <= 12.0 and "asr_text" in record["notes"]
    assert manifest["fixes_applied"]["asr_text"] == 2
    assert "sliced 1 untranscribed recording(s)" in capsys.readouterr().out


def test_slicing_without_an_asr_or_with_clips_over_the_policy_is_refused(tmp_path, make_prepare_config):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with pytest.raises(PrepareError, match="needs an ASR"):
        prepare(make_prepare_config(corpus, tmp_path / "out", tmp_path, "audio.slice_long_inputs=true"))
    with pytest.raises(PrepareError, match=r"audio\.slice\.max_seconds"):
        prepare(make_prepare_config(corpus, tmp_path / "out", tmp_path,
                                    *slicing_overrides("audio.slice.max_seconds=40")))


def test_untranscribed_inputs_are_skipped_with_a_hint_when_slicing_is_off(tmp_path):
    from gpt_sovits_train.data.sources import Utterance
    from gpt_sovits_train.data.utterance import AudioRules, Extractors, process_utterance

    skip = process_utterance(Utterance("x", str(DEMO / "ava_000.flac"), "ava", "en", ""), "ava__x", AudioRules(),
                             Extractors(ssl=None))
    assert skip.reason == "missing_transcript" and "audio.slice_long_inputs=true" in skip.detail

"""Data preparation end to end with the random-init extractors: bad inputs, resume, refusal, empty corpora."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds

from gpt_sovits_train.data.prepare import DatasetExistsError, NoValidSamplesError, prepare
from gpt_sovits_train.data.schema import decode_sample

DEMO_LIST = Path(__file__).resolve().parents[2] / "data" / "demo" / "demo.list"
GOOD_LINES = [line for line in DEMO_LIST.read_text(encoding="utf-8").splitlines()][:2] + [
    line for line in DEMO_LIST.read_text(encoding="utf-8").splitlines() if "|zh|" in line
][:2]


def write_bad_corpus(folder: Path) -> tuple[Path, dict[str, str]]:
    """Good demo lines plus one input of every bad kind; returns the list and {audio name: expected reason}."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, expected = [], {}
    for line in GOOD_LINES:
        relative, rest = line.split("|", 1)
        shutil.copy(DEMO_LIST.parent / relative, folder / Path(relative).name)
        lines.append(f"{Path(relative).name}|{rest}")
    good_audio, rate = sf.read(DEMO_LIST.parent / GOOD_LINES[0].split("|")[0], dtype="float32")

    def add(name: str, reason: str, text: str = "A short test sentence.", language: str = "en") -> None:
        lines.append(f"{name}|bad|{language}|{text}")
        expected[name] = reason

    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 20)
    add("corrupt.wav", "corrupt_audio")
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), rate)
    add("empty.wav", "empty_audio")
    sf.write(folder / "silent.wav", np.zeros(rate * 2, dtype=np.float32), rate)
    add("silent.wav", "silent")
    sf.write(folder / "short.wav", good_audio[: rate // 5], rate)
    add("short.wav", "too_short")
    sf.write(folder / "long.wav", np.tile(good_audio, 4), rate)
    add("long.wav", "too_long")
    sf.write(folder / "clipped.wav", np.clip(good_audio * 20, -1, 1), rate)
    add("clipped.wav", "clipped")
    sf.write(folder / "rate.wav", good_audio[::2], rate // 2)
    add("rate.wav", "wrong_sample_rate")
    sf.write(folder / "stereo.wav", np.stack([good_audio, good_audio], axis=1), rate)
    add("stereo.wav", "not_mono")
    shutil.copy(folder / Path(GOOD_LINES[0].split("|")[0]).name, folder / "notext.flac")
    add("notext.flac", "missing_transcript", text="")
    shutil.copy(folder / Path(GOOD_LINES[0].split("|")[0]).name, folder / "cyrillic.flac")
    add("cyrillic.flac", "unsupported_text", text="Привет, мир", language="en")
    add("nowhere.wav", "missing_audio")
    lines.append("this line has no separators")
    corpus = folder / "bad.list"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus, expected


STRICT = ["audio.allow_resample=false", "audio.expected_sample_rate=32000", "audio.allow_stereo=false",
          "audio.max_seconds=12", "split.val_fraction=0"]


def read_all(shard_dir: Path) -> list[dict]:
    urls = sorted(str(p) for p in shard_dir.rglob("*.tar"))
    return [decode_sample(raw) for raw in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())]


def test_every_bad_input_is_reported_and_every_good_one_kept(tmp_path, random_models, capsys, make_prepare_config):
    corpus, expected = write_bad_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    manifest = prepare(make_prepare_config(corpus, out, random_models, *STRICT))

    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {Path(skip["source"]).name: skip["reason"] for skip in skipped}
    for name, reason in expected.items():
        assert reasons.get(name) == reason, (name, reasons.get(name), skipped)
    assert "malformed_line" in reasons.values()
    assert manifest["written"] == len(GOOD_LINES)
    assert manifest["skipped"] == len(expected) + 1
    samples = read_all(out)
    assert sorted(s["meta"]["text"] for s in samples) == sorted(line.split("|")[3] for line in GOOD_LINES)
    for sample in samples:
        assert sample["ssl"].shape[0] == 768 and sample["speaker_embedding"].shape == (192,)
        assert int(sample["word2ph"].sum()) == sample["phone_ids"].numel()
        if sample["meta"]["language"] == "zh":
            assert sample["bert"].shape == (1024, sample["phone_ids"].numel())
    summary = capsys.readouterr().out
    assert "prepared 4 of" in summary and "corrupt_audio: 1" in summary

    # A finished dataset is never replaced silently ...
    with pytest.raises(DatasetExistsError, match="overwrite=true"):
        prepare(make_prepare_config(corpus, out, random_models, *STRICT))
    # ... and permissive rules fix stereo / other-rate files instead of skipping them.
    fixed = prepare(make_prepare_config(corpus, out, random_models, *STRICT[3:], "overwrite=true"))
    assert fixed["written"] == len(GOOD_LINES) + 2
    assert fixed["fixes_applied"] == {"downmixed": 1, "resampled": 1}


def test_a_corpus_with_nothing_usable_stops_with_counts(tmp_path, random_models, make_prepare_config):
    folder = tmp_path / "corpus"
    folder.mkdir()
    sf.write(folder / "silent.wav", np.zeros(32000, dtype=np.float32), 32000)
    (folder / "broken.wav").write_bytes(b"not audio at all")
    corpus = folder / "all_bad.list"
    corpus.write_text("silent.wav|x|en|Hello there.\nbroken.wav|x|en|Hello there.\n", encoding="utf-8")
    with pytest.raises(NoValidSamplesError, match=r"silent: 1.*corrupt_audio: 1|corrupt_audio: 1.*silent: 1"):
        prepare(make_prepare_config(corpus, tmp_path / "out", random_models))


def test_resume_skips_finished_chunks_and_partitions_share_a_folder(tmp_path, random_models, make_prepare_config):
    corpus, _ = write_bad_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    common = [*STRICT, "shards.utterances_per_chunk=3", "num_partitions=2"]
    first = prepare(make_prepare_config(corpus, out, random_models, *common, "partition=0"))
    assert first is None  # partition 1 still pending: no manifest yet
    finished = {p.name: p.stat().st_mtime_ns for p in (out / ".state").glob("*.done.json")}
    manifest = prepare(make_prepare_config(corpus, out, random_models, *common, "partition=1"))
    assert manifest is not None and manifest["written"] == len(GOOD_LINES)
    assert all((out / ".state" / name).stat().st_mtime_ns == stamp for name, stamp in finished.items())
    with pytest.raises(DatasetExistsError, match="another config"):
        shutil.rmtree(out / "train")
        (out / "manifest.json").unlink()
        prepare(make_prepare_config(corpus, out, random_models, *common, "partition=0", "audio.min_seconds=0.1"))


def test_folder_and_ljspeech_inputs(tmp_path):
    from gpt_sovits_train.data.sources import read_corpus

    folder = tmp_path / "speakers" / "alice"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    sf.write(folder / "a1.wav", np.zeros(100, dtype=np.float32), 16000)
    (folder / "a1.txt").write_text("hello", encoding="utf-8")
    sf.write(folder / "a2.wav", np.zeros(100, dtype=np.float32), 16000)
    utterances, skips = read_corpus(tmp_path / "speakers", language="en")
    assert [(u.speaker, u.text, u.language) for u in utterances] == [("alice", "hello", "en")]
    assert [s.reason for s in skips] == ["missing_transcript"]

    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    (lj / "metadata.csv").write_text("LJ001|Raw 1 text|Normalized one text\nLJ002|Only raw\nbroken\n")
    utterances, skips = read_corpus(lj, language="en", speaker="lj")
    assert [u.text for u in utterances] == ["Normalized one text", "Only raw"]
    assert utterances[0].audio_path.endswith("wavs/LJ001.wav") and skips[0].reason == "malformed_line"


@pytest.mark.slow  # over ~20 s on 2 cores
def test_parallel_workers_write_the_same_samples(tmp_path, random_models, make_prepare_config):
    corpus, _ = write_bad_corpus(tmp_path / "corpus")
    common = [*STRICT, "shards.utterances_per_chunk=2"]
    serial = prepare(make_prepare_config(corpus, tmp_path / "serial", random_models, *common))
    parallel = prepare(make_prepare_config(corpus, tmp_path / "parallel", random_models, *common, "num_workers=2"))
    assert serial["written"] == parallel["written"] == len(GOOD_LINES)
    for name in ("train.index.jsonl", "skipped.jsonl"):
        assert (tmp_path / "serial" / name).read_text() == (tmp_path / "parallel" / name).read_text()
    by_key = {s["key"]: s for s in read_all(tmp_path / "serial")}
    for sample in read_all(tmp_path / "parallel"):
        assert torch.equal(sample["ssl"], by_key[sample["key"]]["ssl"])


def test_post_command_runs_on_every_finished_shard(tmp_path, random_models, make_prepare_config):
    corpus, _ = write_bad_corpus(tmp_path / "corpus")
    copies = tmp_path / "uploaded"
    command = f"mkdir -p {copies}/$(dirname {{shard}}) && cp {{path}} {copies}/{{shard}}"
    manifest = prepare(make_prepare_config(corpus, tmp_path / "out", random_models, *STRICT,
                                      "shards.utterances_per_chunk=2", f"shards.post_command='{command}'"))
    shards = manifest["splits"]["train"]["shards"]
    assert len(shards) == 2
    for shard in shards:
        assert (copies / shard).read_bytes() == (tmp_path / "out" / shard).read_bytes()

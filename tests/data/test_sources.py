"""Corpus readers: duplicate rows, bytes that are not UTF-8 and byte-order marks become skip records, not crashes."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from gpt_sovits_train.data.prepare import split_assignment
from gpt_sovits_train.data.sources import read_corpus
from gpt_sovits_train.data.utterance import assign_keys

SPLIT = OmegaConf.create({"val_fraction": 0.5, "val_min_per_speaker": 1, "val_max_per_speaker": 50, "seed": 0})


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"RIFF")


def test_repeated_rows_keep_one_source_in_one_split_and_report_the_repeats(tmp_path):
    touch(tmp_path, "a.wav", "b.wav", "c.wav", "d.wav")
    rows = ["a.wav|s|en|Alpha.", "b.wav|s|en|Bravo.", "c.wav|s|en|Charlie.", "d.wav|s|en|Delta."]
    repeated = [*rows, *rows, "./a.wav|s|en|Alpha again.", f"{tmp_path / 'b.wav'}|s|en|Bravo."]
    (tmp_path / "all.list").write_text("\n".join(repeated) + "\n", encoding="utf-8")
    utterances, skips = read_corpus(tmp_path / "all.list")
    assert sorted(Path(u.audio_path).name for u in utterances) == ["a.wav", "b.wav", "c.wav", "d.wav"]
    duplicates = [skip for skip in skips if skip.reason == "duplicate_source"]
    assert len(duplicates) == 6
    assert any("all.list:9" in skip.detail and "all.list:1" in skip.detail for skip in duplicates)
    split_of = split_assignment(utterances, assign_keys(utterances), SPLIT)
    by_source: dict[str, set[str]] = {}
    for utterance, key in zip(utterances, assign_keys(utterances)):
        by_source.setdefault(str(Path(utterance.audio_path).resolve()), set()).add(split_of[key])
    assert all(len(splits) == 1 for splits in by_source.values()) and len(by_source) == 4


def test_a_line_that_is_not_utf8_is_skipped_with_its_file_and_line(tmp_path):
    touch(tmp_path, "a.wav", "b.wav", "c.wav")
    content = "a.wav|s|zh|你好。\n".encode() + "b.wav|s|zh|再见。\n".encode("gb18030") + b"c.wav|s|en|Fine.\n"
    (tmp_path / "mixed.list").write_bytes(content)
    utterances, skips = read_corpus(tmp_path / "mixed.list")
    assert [Path(u.audio_path).name for u in utterances] == ["a.wav", "c.wav"]
    assert [(skip.source, skip.reason) for skip in skips] == [("mixed.list:2", "undecodable_text")]
    assert "UTF-8" in skips[0].detail


def test_a_byte_order_mark_does_not_hide_the_first_path(tmp_path):
    touch(tmp_path, "a.wav", "b.wav")
    (tmp_path / "bom.list").write_bytes(b"\xef\xbb\xbf" + b"a.wav|s|en|One.\r\nb.wav|s|en|Two.\r\n")
    utterances, skips = read_corpus(tmp_path / "bom.list")
    assert [(Path(u.audio_path).name, u.text) for u in utterances] == [("a.wav", "One."), ("b.wav", "Two.")]
    assert Path(utterances[0].audio_path).is_file() and skips == []


def test_folder_and_ljspeech_transcripts_in_other_encodings_are_skipped_by_name(tmp_path):
    folder = tmp_path / "speaker"
    folder.mkdir()
    touch(folder, "a.wav", "b.wav")
    (folder / "a.txt").write_bytes(b"\xef\xbb\xbfhello")
    (folder / "b.txt").write_bytes("caf\u00e9".encode("latin-1"))
    utterances, skips = read_corpus(folder, language="en")
    assert [u.text for u in utterances] == ["hello"]
    assert [skip.reason for skip in skips] == ["undecodable_text"] and "b.txt" in skips[0].detail

    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    (lj / "metadata.csv").write_bytes(b"\xef\xbb\xbfLJ1|One\nLJ2|caf\xe9\nLJ3|Three\n")
    utterances, skips = read_corpus(lj, language="en", speaker="lj")
    assert [u.utterance_id for u in utterances] == ["LJ1", "LJ3"]
    assert [(skip.source, skip.reason) for skip in skips] == [("metadata.csv:2", "undecodable_text")]

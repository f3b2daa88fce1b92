"""``gst-prepare`` never destroys what it did not write, and two runs never share an output folder.

Real runs with the random-init extractors; concurrency is tested with real ``gst-prepare`` processes whose
``shards.post_command`` parks them (lock held) until the test says go, so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from gpt_sovits_train.data.prepare import DatasetExistsError, PrepareError, prepare

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_LIST = REPO_ROOT / "data" / "demo" / "demo.list"


def small_corpus(folder: Path, count: int = 3) -> Path:
    """A .list (absolute audio paths into data/demo) with ``count`` English lines of one speaker."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line for line in DEMO_LIST.read_text(encoding="utf-8").splitlines() if "|en|" in line][:count]
    absolute = [f"{DEMO_LIST.parent / line.split('|', 1)[0]}|{line.split('|', 1)[1]}" for line in lines]
    corpus = folder / "small.list"
    corpus.write_text("\n".join(absolute) + "\n", encoding="utf-8")
    return corpus


def user_files(root: Path) -> dict[str, bytes]:
    """A user's own corpus layout: train/ and val/ with recordings and transcripts."""
    files = {
        "train/a.wav": b"RIFF user recording a",
        "train/a.txt": b"hello",
        "val/b.wav": b"RIFF user b",
        "val/b.txt": b"world",
        ".state/notes.md": b"my notes",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return files


def test_overwrite_deletes_only_what_a_previous_prepare_wrote(tmp_path, random_models, make_prepare_config):
    corpus = small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    mine = user_files(out)
    common = ["split.val_fraction=0", "split.val_min_per_speaker=0", "overwrite=true"]
    first = prepare(make_prepare_config(corpus, out, random_models, *common))
    assert first["written"] == 3
    for name, content in mine.items():
        assert (out / name).read_bytes() == content, name
    (out / "train" / first["splits"]["train"]["shards"][0].split("/")[-1]).write_bytes(b"stale")  # ours: replaced
    second = prepare(make_prepare_config(corpus, out, random_models, *common, "audio.min_seconds=0.5"))
    assert second["written"] == 3
    for name, content in mine.items():
        assert (out / name).read_bytes() == content, name
    shard = out / second["splits"]["train"]["shards"][0]
    with tarfile.open(shard) as tar:
        assert len({member.name.split(".")[0] for member in tar.getmembers()}) == 3


@pytest.mark.parametrize("where", ["corpus_folder", "list_folder_parent"])
def test_an_output_folder_overlapping_the_input_is_refused(tmp_path, random_models, make_prepare_config, where):
    corpus_dir = tmp_path / "corpus"
    user_files(corpus_dir)
    (corpus_dir / "train" / "a.flac").write_bytes((DEMO_LIST.parent / "ava" / "ava_000.flac").read_bytes())
    corpus = corpus_dir / "all.list"
    corpus.write_text("train/a.flac|x|en|Hello there.\n", encoding="utf-8")
    out = corpus_dir if where == "corpus_folder" else tmp_path
    before = {p: p.read_bytes() for p in corpus_dir.rglob("*") if p.is_file()}
    with pytest.raises(PrepareError, match="overlaps the input"):
        prepare(make_prepare_config(corpus, out, random_models, "overwrite=true"))
    assert {p: p.read_bytes() for p in corpus_dir.rglob("*") if p.is_file()} == before


def test_bad_paths_are_refused_before_anything_is_read_or_built(tmp_path, make_prepare_config):
    corpus = small_corpus(tmp_path / "corpus")
    (tmp_path / "a_file").write_text("x")
    nowhere = tmp_path / "no_models"  # building the extractors would fail with another error
    cases = {
        "input.path .* does not exist": (tmp_path / "nope.list", tmp_path / "out"),
        "is a file, not a folder": (corpus, tmp_path / "a_file"),
        "overlaps the input": (corpus, corpus.parent),
    }
    for expected, (source, out) in cases.items():
        with pytest.raises(PrepareError, match=expected):
            prepare(make_prepare_config(source, out, nowhere))
    assert not (tmp_path / "out").exists()


def test_a_failed_run_does_not_block_the_corrected_rerun(tmp_path, random_models, make_prepare_config):
    from gpt_sovits_train.data.prepare import NoValidSamplesError

    corpus = small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    with pytest.raises(NoValidSamplesError):  # every clip is "too short" for this rule
        prepare(make_prepare_config(corpus, out, random_models, "audio.min_seconds=25"))
    manifest = prepare(make_prepare_config(corpus, out, random_models))
    assert manifest["written"] == 3
    with pytest.raises(DatasetExistsError, match="overwrite=true"):
        prepare(make_prepare_config(corpus, out, random_models, "audio.min_seconds=0.5"))


def test_the_manifest_lists_only_shards_that_verify(tmp_path, random_models, make_prepare_config):
    corpus = small_corpus(tmp_path / "corpus", count=4)
    out = tmp_path / "out"
    common = [
        "split.val_fraction=0",
        "split.val_min_per_speaker=0",
        "shards.utterances_per_chunk=2",
        "num_partitions=2",
    ]
    assert prepare(make_prepare_config(corpus, out, random_models, *common, "partition=0")) is None
    lost = sorted((out / "train").glob("*.tar"))
    assert len(lost) == 1
    lost[0].unlink()  # e.g. removed by another tool between the partitions
    manifest = prepare(make_prepare_config(corpus, out, random_models, *common, "partition=1"))
    assert manifest["written"] == 4
    for shard in manifest["splits"]["train"]["shards"]:
        assert (out / shard).is_file(), shard
    assert manifest["splits"]["train"]["shard_samples"] == {s: 2 for s in manifest["splits"]["train"]["shards"]}


# ---------------------------------------------------------------- concurrent processes


def cli_command(corpus: Path, out: Path, models: Path, hydra_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gpt_sovits_train.cli.prepare",
        f"input.path={corpus}",
        f"output_dir={out}",
        "prepare/features@features=random_init",
        f"random_models={models}",
        "features.ssl.device=cpu",
        "features.bert.device=cpu",
        "features.speaker.device=cpu",
        "progress=false",
        "threads_per_worker=1",
        "split.val_fraction=0",
        "split.val_min_per_speaker=0",
        f"hydra.run.dir={hydra_dir}",
        *extra,
    ]


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until ``path`` exists; fails (with the process output) if the process ends first."""
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"process ended early: {process.communicate()}")
        time.sleep(0.05)


@pytest.mark.slow  # three real gst-prepare processes
def test_a_second_run_into_a_folder_in_use_fails_fast_and_the_lock_dies_with_its_owner(tmp_path, random_models):
    corpus = small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    parked, go = tmp_path / "parked", tmp_path / "go"
    park = f"shards.post_command='touch {parked} && while [ ! -f {go} ]; do sleep 0.05; done'"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.Popen(
        cli_command(corpus, out, random_models, tmp_path / "h1", park),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(parked, first)  # a shard is written and the first run holds the folder
        second = subprocess.run(
            cli_command(corpus, out, random_models, tmp_path / "h2"),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2, second.stderr[-2000:]
        assert "another gst-prepare run is using" in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr
        os.killpg(first.pid, signal.SIGKILL)  # the owner dies mid-run: its lock must go with it
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not (out / "manifest.json").exists()
    go.touch()
    third = subprocess.run(
        cli_command(corpus, out, random_models, tmp_path / "h3", park),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert third.returncode == 0, third.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["written"] == 3
    for shard in manifest["splits"]["train"]["shards"]:
        with tarfile.open(out / shard) as tar:
            keys = {member.name.split(".")[0] for member in tar.getmembers()}
        assert len(keys) == manifest["splits"]["train"]["shard_samples"][shard]

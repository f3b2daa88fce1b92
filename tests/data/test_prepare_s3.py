"""gst-prepare into object storage (``output_dir=s3://...``) against a real S3-compatible server (moto, the
``s3_server`` fixture): the DataModules read every prepared sample from the bucket, the manifest is written last and
never lists a shard the bucket lacks, a rerun uploads only what is missing, and a prefix holding someone else's
files is refused before any work."""

from __future__ import annotations

import json
import os

import pytest

from gpt_sovits_train.data.prepare import DatasetExistsError, PrepareError, prepare
from tests.helpers import demo_subset

BUCKET = "gst-data"


@pytest.fixture
def bucket(s3_server):
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL_S3"]}, skip_instance_cache=True)
    fs.mkdir(BUCKET)
    return fs


def english_demo(folder) -> str:
    """Two English demo lines per speaker (the English frontend starts fastest)."""
    return demo_subset(folder / "english.list", 2)


def names(fs, prefix: str) -> dict[str, int]:
    fs.invalidate_cache()
    root = f"{BUCKET}/{prefix}/"
    return {path[len(root) :]: info["size"] for path, info in fs.find(root, detail=True).items()}


def test_prepare_publishes_to_s3_and_the_datamodule_reads_every_sample(
    bucket, tmp_path, random_models, make_prepare_config, capsys
):
    from gpt_sovits_train.data.datamodule import SoVITSDataModule

    url = f"s3://{BUCKET}/datasets/demo"
    staging = tmp_path / "staging"
    cfg = make_prepare_config(english_demo(tmp_path), url, random_models, f"staging_dir={staging}",
                              "shards.utterances_per_chunk=1")
    manifest = prepare(cfg)
    shards = [shard for split in manifest["splits"].values() for shard in split["shards"]]
    remote = names(bucket, "datasets/demo")
    assert len(shards) == 4
    assert {"manifest.json", "train.index.jsonl", "val.index.jsonl", "skipped.jsonl"} <= set(remote)
    for shard in shards:  # every listed shard is in the bucket, byte for byte the verified local one
        assert remote[shard] == (staging / shard).stat().st_size
    assert f"uploaded {len(shards)} shard(s)" in capsys.readouterr().out

    # Training reads the dataset from the bucket: every prepared sample, in both splits.
    module = SoVITSDataModule(url, batching={"max_batch_size": 2, "shuffle": False}, num_workers=0)
    module.setup()
    seen = [key for loader in (module.train_dataloader(), module.val_dataloader()) for b in loader for key in b["keys"]]
    indexed = [json.loads(line)["key"] for name in ("train", "val")
               for line in (staging / f"{name}.index.jsonl").read_text().splitlines()]
    assert sorted(seen) == sorted(indexed) and len(seen) == manifest["written"] == 4

    # An interrupted upload (manifest and one shard missing) resumes: only the missing shard goes up again.
    bucket.rm([f"{BUCKET}/datasets/demo/manifest.json", f"{BUCKET}/datasets/demo/{shards[0]}"])
    prepare(cfg)
    out = capsys.readouterr().out
    assert "uploaded 1 shard(s)" in out and f"{len(shards) - 1} already there" in out
    assert set(names(bucket, "datasets/demo")) == set(remote)

    # A finished dataset is never replaced silently.
    with pytest.raises(DatasetExistsError, match="already holds a finished dataset"):
        prepare(cfg)

    # The manifest is published only once every shard it lists is in the bucket.
    bucket.rm(f"{BUCKET}/datasets/demo/manifest.json")
    (staging / shards[1]).unlink()
    with pytest.raises(PrepareError, match="missing from the staging folder"):
        prepare(cfg)
    assert "manifest.json" not in names(bucket, "datasets/demo")


def test_a_prefix_holding_files_not_written_by_prepare_is_refused_before_any_work(
    bucket, tmp_path, random_models, make_prepare_config
):
    bucket.pipe_file(f"{BUCKET}/mixed/notes/readme.txt", b"someone else's file")
    staging = tmp_path / "staging"
    for overwrite in ("false", "true"):
        cfg = make_prepare_config(english_demo(tmp_path), f"s3://{BUCKET}/mixed", random_models,
                                  f"staging_dir={staging}", f"overwrite={overwrite}")
        refused = r"1 file\(s\) gst-prepare did not write \(e.g. notes/readme.txt\)"
        with pytest.raises(DatasetExistsError, match=refused):
            prepare(cfg)
    assert not staging.exists()  # refused before anything was prepared
    assert bucket.cat_file(f"{BUCKET}/mixed/notes/readme.txt") == b"someone else's file"


def test_the_prefix_rules_another_config_another_staging_and_overwrite(bucket, tmp_path):
    from gpt_sovits_train.data.remote_output import CLAIM, RemoteOutput

    remote, staging = RemoteOutput(f"s3://{BUCKET}/rules"), tmp_path / "staging"
    remote.check("hash-1", False, staging)  # an empty prefix is free
    remote.claim("hash-1", staging, overwrite=False)
    remote.check("hash-1", False, staging)  # the same run resumes
    with pytest.raises(DatasetExistsError, match="another config"):
        remote.check("hash-2", False, staging)
    with pytest.raises(DatasetExistsError, match="another staging folder"):
        remote.check("hash-1", False, tmp_path / "elsewhere")
    bucket.pipe_file(f"{BUCKET}/rules/train/train-000000-000.tar", b"old shard")
    bucket.pipe_file(f"{BUCKET}/rules/manifest.json", json.dumps({"config_hash": "hash-1", "splits": {}}).encode())
    with pytest.raises(DatasetExistsError, match="finished dataset"):
        remote.check("hash-1", False, staging)
    remote.check("hash-2", True, staging)  # overwrite=true may replace our own dataset ...
    remote.claim("hash-2", staging, overwrite=True)
    assert set(names(bucket, "rules")) == {CLAIM}  # ... and deletes only what we wrote, manifest first
    assert json.loads(bucket.cat_file(f"{BUCKET}/rules/{CLAIM}"))["config_hash"] == "hash-2"

"""Schema validation and shard round trips: what is written is exactly what is read back."""

from __future__ import annotations

import pytest
import torch
import webdataset as wds

from gpt_sovits_train.data.schema import SchemaError, decode_sample, encode_sample, safe_key, validate_sample


def make_sample(key: str, phones: int = 7, frames: int = 20, with_optional: bool = True) -> dict:
    audio = torch.randint(-20000, 20000, (frames * 640,)).float() / 32768.0  # exactly representable in 16 bit
    sample = {
        "key": key,
        "audio": audio,
        "phone_ids": torch.randint(0, 732, (phones,)),
        "word2ph": torch.tensor([2] * (phones // 2) + [phones - 2 * (phones // 2)] * (phones % 2)),
        "ssl": torch.randn(768, frames).half(),
        "meta": {"speaker": "s", "language": "zh", "text": "你好", "norm_text": "你好", "phones": ["a"] * phones,
                 "duration": frames * 0.02, "sample_rate": 32000},
    }
    if with_optional:
        sample.update(
            bert=torch.randn(1024, phones),
            semantic=torch.randint(0, 1024, (frames // 2,)),
            speaker_embedding=torch.randn(192),
            encodec=torch.randint(0, 1024, (2, frames)),
        )
    return sample


def test_shard_round_trip_gives_identical_tensors(tmp_path):
    written = [make_sample(f"utt_{i}", phones=5 + i, frames=10 + 3 * i, with_optional=i % 2 == 0) for i in range(5)]
    with wds.ShardWriter(str(tmp_path / "shard-%03d.tar"), maxcount=2, verbose=0) as writer:
        for sample in written:
            writer.write(encode_sample(sample))
    urls = sorted(str(path) for path in tmp_path.glob("shard-*.tar"))
    assert len(urls) == 3  # maxcount=2 rolls over
    read = [decode_sample(raw) for raw in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())]
    assert [sample["key"] for sample in read] == [sample["key"] for sample in written]
    for original, loaded in zip(written, read):
        assert set(original) == set(loaded)
        assert loaded["meta"] == original["meta"]
        for field, value in original.items():
            if isinstance(value, torch.Tensor):
                assert loaded[field].dtype == value.dtype, field
                assert torch.equal(loaded[field], value), field


def test_validation_names_the_broken_field():
    sample = make_sample("ok")
    validate_sample(sample)
    with pytest.raises(SchemaError, match="bert"):
        validate_sample({**sample, "bert": torch.randn(1024, 3)})
    with pytest.raises(SchemaError, match="word2ph"):
        validate_sample({**sample, "word2ph": torch.tensor([1])})
    with pytest.raises(SchemaError, match="ssl"):
        validate_sample({k: v for k, v in sample.items() if k != "ssl"})
    with pytest.raises(SchemaError, match="dot"):
        validate_sample({**sample, "key": "a.b"})


def test_safe_key_removes_separators():
    assert safe_key("spk/sub dir/utt.001") == "spk_sub_dir_utt_001"
    with pytest.raises(SchemaError):
        safe_key("...")

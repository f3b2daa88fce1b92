"""DataModules on the prepared demo subset: batch formats, DDP partitions, determinism, exact resume."""

from __future__ import annotations

import json
from itertools import chain

import lightning.pytorch as pl
import pytest
import torch
import webdataset as wds

from gpt_sovits_train.data.collate import SEMANTIC_EOS, collate_gpt
from gpt_sovits_train.data.datamodule import GPTDataModule, SoVITSDataModule
from gpt_sovits_train.data.schema import decode_sample
from gpt_sovits_train.features.random_init import RandomSemanticQuantizer
from gpt_sovits_train.features.semantic import LatentCodeExtractor

SMALL = {"max_tokens": 1200, "max_batch_size": 4, "max_item_length": 1000, "window": 8}


def train_keys(shards) -> list[str]:
    return [json.loads(line)["key"] for line in (shards / "train.index.jsonl").read_text().splitlines()]


def epoch_keys(module) -> list[list[str]]:
    module.setup()
    return [batch["keys"] for batch in module.train_dataloader()]


def test_demo_subset_prepares_with_random_init_extractors(demo_shards):
    manifest = json.loads((demo_shards / "manifest.json").read_text())
    assert manifest["written"] == 16 and manifest["skipped"] == 0
    assert set(manifest["speakers"]) == {"ava", "bo"}
    assert manifest["splits"]["val"]["count"] == 2  # one per speaker
    assert set(manifest["feature_versions"]) == {"ssl", "bert", "speaker", "semantic"}
    languages = {json.loads(line)["language"] for line in (demo_shards / "train.index.jsonl").read_text().splitlines()}
    assert languages == {"en", "zh", "mixed"}


def test_sovits_batches_follow_the_design_format(demo_shards):
    module = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0)
    module.setup()
    batches = list(module.train_dataloader())
    assert sorted(k for b in batches for k in b["keys"]) == sorted(train_keys(demo_shards))
    for batch in batches:
        size, frames = len(batch["keys"]), batch["ssl"].shape[-1]
        assert batch["ssl"].shape == (size, 768, frames) and batch["spec"].shape == (size, 1025, frames)
        assert batch["wav"].shape == (size, 1, frames * 640)
        assert torch.equal(batch["ssl_lengths"], batch["spec_lengths"])
        assert torch.equal(batch["wav_lengths"], batch["spec_lengths"] * 640)
        assert batch["text"].dtype == torch.long and batch["text_lengths"].max() == batch["text"].shape[1]
        assert batch["speaker_embedding"].shape == (size, 192)
        assert size * frames <= SMALL["max_tokens"]
    val = list(module.val_dataloader())
    assert sum(len(b["keys"]) for b in val) == module.manifest["splits"]["val"]["count"] > 0


def test_two_ranks_see_disjoint_complete_halves_with_equal_batch_counts(demo_shards):
    per_rank = []
    for rank in range(2):
        module = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0, rank=rank, world_size=2, seed=3)
        module.setup()
        loader = module.train_dataloader()
        expected_batches = len(loader)
        keys = [batch["keys"] for batch in loader]
        assert len(keys) == expected_batches
        per_rank.append(keys)
    flat = [[k for batch in keys for k in batch] for keys in per_rank]
    assert not set(flat[0]) & set(flat[1])
    assert sorted(flat[0] + flat[1]) == sorted(train_keys(demo_shards))
    assert len(per_rank[0]) == len(per_rank[1])


def test_order_is_deterministic_per_epoch_and_workers_keep_the_plan(demo_shards):
    in_process = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0, seed=5)
    with_workers = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=2, seed=5)
    first, second = epoch_keys(in_process), epoch_keys(in_process)  # standalone: each pass is the next epoch
    assert epoch_keys(with_workers) == first
    assert first != second and sorted(chain(*first)) == sorted(chain(*second))


def test_resume_skips_exactly_the_consumed_batches(demo_shards):
    module = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0, seed=9)
    module.setup()
    loader = module.train_dataloader()
    full = [batch["keys"] for batch in loader]
    module._epoch = 0  # standalone use advanced to epoch 1; go back to replay epoch 0
    iterator = iter(module.train_dataloader())
    consumed = [next(iterator)["keys"] for _ in range(2)]
    assert consumed == full[:2]
    state = module.state_dict()
    assert state == {"epoch": 0, "batches_consumed": 2}

    resumed = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=2, seed=9)
    resumed.load_state_dict(state)
    resumed.setup()
    rest = [batch["keys"] for batch in resumed.train_dataloader()]
    assert rest == full[2:]
    assert resumed.state_dict() == {"epoch": 0, "batches_consumed": len(full)}


def test_gpt_batches_follow_the_design_format(demo_shards):
    module = GPTDataModule(str(demo_shards), batching={**SMALL, "max_tokens": 800, "max_item_length": 400},
                           num_workers=0)
    module.setup()
    for batch in module.train_dataloader():
        size, phones = batch["phoneme_ids"].shape
        assert batch["bert_feature"].shape == (size, 1024, phones)
        for row, (p_len, s_len) in enumerate(zip(batch["phoneme_ids_len"], batch["semantic_ids_len"])):
            assert (batch["phoneme_ids"][row, p_len:] == 0).all()
            assert (batch["bert_feature"][row, :, p_len:] == 0).all()
            assert (batch["semantic_ids"][row, s_len:] == SEMANTIC_EOS).all()
            assert (batch["semantic_ids"][row, :s_len] < 1024).all()


def test_semantic_extractor_fills_in_missing_ids_as_prepare_stored_them(demo_shards):
    urls = sorted(str(p) for p in (demo_shards / "train").glob("*.tar"))
    samples = [decode_sample(raw) for raw in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())]
    without = [{k: v for k, v in sample.items() if k != "semantic"} for sample in samples[:4]]
    derived = collate_gpt(without, LatentCodeExtractor(RandomSemanticQuantizer()))
    stored = collate_gpt(samples[:4])
    assert torch.equal(derived["semantic_ids"], stored["semantic_ids"])
    assert torch.equal(derived["semantic_ids_len"], stored["semantic_ids_len"])


def test_gpt_collation_without_semantic_ids_says_what_to_configure():
    sample = {"key": "k", "phone_ids": torch.tensor([1, 2]), "ssl": torch.randn(768, 10)}
    with pytest.raises(ValueError, match="semantic_extractor"):
        collate_gpt([sample])


class KeyRecorder(pl.LightningModule):
    """Records which samples each epoch trained on; one parameter so the optimizer has something to step."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[str]] = {}
        self.batches: list[list[str]] = []

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(batch["keys"])
        self.batches.append(batch["keys"])
        return (self.weight * batch["ssl"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_trainer_sees_every_sample_each_epoch_in_a_new_order(demo_shards):
    module = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0)
    model = KeyRecorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0)
    trainer.fit(model, datamodule=module)
    assert trainer.reload_dataloaders_every_n_epochs == 1  # per-epoch batch counts differ with dynamic batching
    expected = sorted(train_keys(demo_shards))
    assert sorted(model.seen[0]) == expected and sorted(model.seen[1]) == expected
    assert model.seen[0] != model.seen[1]


def test_shards_stream_through_a_pipe_url(demo_shards):
    local = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0, seed=4)
    piped = SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0, seed=4,
                             shard_url_template="pipe:cat {root}/{shard}")
    assert epoch_keys(piped) == epoch_keys(local)


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, **kwargs)


def test_mid_epoch_checkpoint_resumes_at_the_exact_next_batch(demo_shards, tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    uninterrupted = KeyRecorder()
    quiet_trainer(max_epochs=2, enable_checkpointing=False).fit(
        uninterrupted, datamodule=SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0))
    per_epoch = len(uninterrupted.batches) // 2
    stop_at = per_epoch + 1  # one batch into the second epoch
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1, filename="{step}")
    interrupted = KeyRecorder()
    quiet_trainer(max_epochs=2, max_steps=stop_at, callbacks=[saver]).fit(
        interrupted, datamodule=SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=0))
    resumed = KeyRecorder()
    quiet_trainer(max_epochs=2, enable_checkpointing=False).fit(
        resumed, datamodule=SoVITSDataModule(str(demo_shards), batching=SMALL, num_workers=2),
        ckpt_path=tmp_path / f"step={stop_at}.ckpt")
    assert interrupted.batches + resumed.batches == uninterrupted.batches

"""The EnCodec GPT+SoVITS preset pair and ECAPA speaker conditioning train end to end through ``train()``.

Shards come from the real prepare code on a few demo utterances with random-init extractors (EnCodec included),
so the batches carry EnCodec codes and ECAPA speaker embeddings exactly as a real dataset would.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gpt_sovits_train.features.codec import codec_content_tokens
from gpt_sovits_train.training.run import build, train

from .conftest import compose_train, prepare_demo_shards, quiet_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encodec_shards(tmp_path_factory) -> Path:
    """Shards of 6 demo utterances (3 per speaker) with EnCodec codes and ECAPA embeddings."""
    return prepare_demo_shards(tmp_path_factory.mktemp("encodec_data"), 3, chunk=3, with_encodec=True)


def _short_run(experiment_or_stage: list[str], shards: Path, steps: int) -> list[str]:
    """A few optimizer steps on CPU in-process, batches of 2, one validation batch, a checkpoint at the end."""
    return [*experiment_or_stage, f"data.shards={shards}", "trainer=cpu", *quiet_overrides(),
            "data.num_workers=0", "data.batching.max_batch_size=2", "data.val_batching.max_batch_size=2",
            f"trainer.max_steps={steps}", "trainer.max_epochs=-1", "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1", f"callbacks.model_checkpoint.every_n_train_steps={steps}"]


def _finished_with_finite_losses(result: dict, steps: int) -> None:
    assert result["status"] == "finished" and result["global_step"] == steps
    assert Path(result["last_checkpoint"]).is_file()
    losses = {k: v for k, v in result["metrics"].items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses


def test_encodec_sovits_preset_trains_on_codec_tokens(encodec_shards, tmp_path):
    cfg = compose_train(_short_run(["experiment=demo_encodec_sovits"], encodec_shards, 4), tmp_path)
    assert cfg.model.net.content_source == "encodec"
    result = train(cfg)
    _finished_with_finite_losses(result, 4)  # 2 generator + 2 discriminator updates
    assert "val/loss_mel" in result["metrics"]  # validation resynthesized from the codec tokens too
    state = torch.load(result["last_checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    assert "net.content_emb.weight" in state and not any(k.startswith("net.quantizer.") for k in state)


def test_encodec_gpt_preset_models_the_same_codec_tokens(encodec_shards, tmp_path):
    cfg = compose_train(_short_run(["experiment=demo_encodec_gpt"], encodec_shards, 4), tmp_path)
    assert cfg.data.token_source == "encodec"
    datamodule = build(cfg)[0]
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    ids, lengths = batch["semantic_ids"], batch["semantic_ids_len"]
    assert int(ids.min()) >= 0 and int(ids.max()) <= 1024  # 1024 codes + EOS padding
    assert all(int(ids[i, : lengths[i]].max()) < 1024 for i in range(ids.shape[0]))
    # the GPT's targets are exactly the SoVITS generator's content tokens of the same utterance
    sovits_cfg = compose_train(_short_run(["experiment=demo_encodec_sovits"], encodec_shards, 4), tmp_path / "s")
    sovits_data = build(sovits_cfg)[0]
    sovits_data.setup("fit")
    sovits_batch = next(iter(sovits_data.train_dataloader()))
    compared = 0
    for row, key in enumerate(sovits_batch["keys"]):
        if key in batch["keys"]:
            gpt_row = batch["keys"].index(key)
            shared = min(int(lengths[gpt_row]), int(sovits_batch["content_code_lengths"][row]))
            assert shared > 0
            assert torch.equal(ids[gpt_row, :shared], sovits_batch["content_codes"][row, :shared])
            compared += 1
    assert compared > 0, f"no utterance in both first batches: {batch['keys']} vs {sovits_batch['keys']}"

    result = train(compose_train(_short_run(["experiment=demo_encodec_gpt"], encodec_shards, 4), tmp_path))
    _finished_with_finite_losses(result, 4)


def test_codec_tokens_of_prepared_samples_follow_the_content_rule(encodec_shards):
    """Stored EnCodec codes are 75 Hz; the batch holds one 25 Hz token per two spectrogram frames."""
    from gpt_sovits_train.data.datamodule import SoVITSDataModule

    data = SoVITSDataModule(str(encodec_shards), batching={"max_batch_size": 2}, num_workers=0)
    batch = next(iter(data.train_dataloader()))
    for row in range(len(batch["keys"])):
        frames = int(batch["spec_lengths"][row])
        assert int(batch["content_code_lengths"][row]) == math.ceil(frames / 2)
        raw = batch["encodec"][row, :, : int(batch["encodec_lengths"][row])]
        assert abs(raw.shape[-1] / 3 - frames / 2) <= 2  # 75 Hz codes vs 50 Hz spectrogram frames
        tokens = codec_content_tokens(raw)
        shared = min(tokens.numel(), math.ceil(frames / 2))
        assert torch.equal(batch["content_codes"][row, :shared], tokens[:shared])


def test_ecapa_conditioning_trains_spk_proj(encodec_shards, tmp_path):
    overrides = _short_run(["model=sovits", "model/sovits@model.net=tiny_ecapa", "model.discriminator.max_channels=64"],
                           encodec_shards, 4)
    result = train(compose_train(overrides, tmp_path))
    _finished_with_finite_losses(result, 4)
    state = torch.load(result["last_checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    # spk_proj starts at zero (the generator begins as the plain v2 model); training must move it
    assert float(state["net.spk_proj.weight"].abs().sum()) > 0


def test_speaker_preset_without_embeddings_names_the_prepare_option(encodec_shards, tmp_path):
    """A speaker-conditioned generator on shards without speaker embeddings fails with the fix in the message."""
    from gpt_sovits_train.lit.sovits_module import SoVITSModule

    tiny_ecapa = ["model=sovits", "model/sovits@model.net=tiny_ecapa", "model.discriminator.max_channels=64"]
    cfg = compose_train(_short_run(tiny_ecapa, encodec_shards, 1), tmp_path)
    _, module, _ = build(cfg)
    assert isinstance(module, SoVITSModule)
    with pytest.raises(KeyError, match=r"features\.speaker"):
        module._check_batch({"spec": 0, "spec_lengths": 0, "wav": 0, "text": 0, "text_lengths": 0, "ssl": 0})

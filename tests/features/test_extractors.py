"""Feature extractors load random-init models of the real classes by path and give the v2 shapes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from gpt_sovits_train.features.bert import ChineseBertExtractor
from gpt_sovits_train.features.codec import EncodecTokenizer
from gpt_sovits_train.features.hub import resolve_model_dir
from gpt_sovits_train.features.random_init import make_all, make_encodec
from gpt_sovits_train.features.semantic import LatentCodeExtractor
from gpt_sovits_train.features.speaker import EcapaSpeakerEncoder
from gpt_sovits_train.features.ssl import HubertExtractor


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("models"), seed=1)


def speech_like(seconds: float, rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * torch.pi * 180 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)) + 0.01 * torch.randn(t.shape)


def test_hubert_gives_768_channels_at_50_hz(models):
    extractor = HubertExtractor(models["ssl"], device="cpu")
    features = extractor(speech_like(2.0))
    assert features.shape == (768, 2 * 16000 // 320 - 1)  # HuBERT's conv stack drops the last partial frame
    assert torch.isfinite(features).all() and features.std() > 0
    assert not torch.equal(features, extractor(speech_like(2.0) * 0.5 + 0.01 * torch.randn(32000)))


def test_bert_is_expanded_to_phoneme_rate_from_the_third_last_layer(models):
    extractor = ChineseBertExtractor(models["bert"], device="cpu")
    word2ph = [2, 2, 1, 2]
    features = extractor("今天好。", word2ph)
    assert features.shape == (1024, sum(word2ph))
    assert torch.equal(features[:, 0], features[:, 1]) and not torch.equal(features[:, 1], features[:, 2])
    inputs = extractor.tokenizer(list("今天好。"), is_split_into_words=True, return_tensors="pt")
    hidden = extractor.model(**inputs, output_hidden_states=True).hidden_states[-3][0, 1:-1]
    assert torch.allclose(features[:, 4], hidden[2])
    with pytest.raises(ValueError, match="word2ph"):
        extractor("今天", [2])


def test_ecapa_gives_a_192_d_embedding(models):
    encoder = EcapaSpeakerEncoder(models["speaker"], device="cpu")
    embedding = encoder(speech_like(1.5))
    assert embedding.shape == (192,) and torch.isfinite(embedding).all()


def test_encodec_tokens(tmp_path):
    tokenizer = EncodecTokenizer(make_encodec(tmp_path / "encodec", bandwidth=1.5), device="cpu")
    codes = tokenizer(speech_like(1.0, 32000), 32000)
    assert codes.dtype == torch.long and codes.shape == (2, 75)  # 1.5 kbps = 2 codebooks at 75 Hz


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="hf download") as raised:
        resolve_model_dir("no-such-org/no-such-model")
    # the command it names exists here (huggingface_hub installs `hf`; `huggingface-cli` is gone from new releases)
    program = str(raised.value).split("`")[1].split()[0]
    assert (Path(sys.executable).parent / program).is_file() or shutil.which(program), program


def test_semantic_adapter_rejects_networks_without_extract_latent():
    with pytest.raises(TypeError, match="extract_latent"):
        LatentCodeExtractor(torch.nn.Linear(2, 2))

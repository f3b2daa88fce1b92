"""Small random-initialized models for inference/evaluation tests (same classes as real checkpoints)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import build_random_ctc_asr


@pytest.fixture(scope="session")
def tiny_asr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_ctc_asr(tmp_path_factory.mktemp("asr") / "wav2vec2_ctc")


@pytest.fixture(scope="session")
def random_feature_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from gpt_sovits_train.features.random_init import make_all

    return make_all(tmp_path_factory.mktemp("features"))

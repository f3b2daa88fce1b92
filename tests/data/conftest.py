"""Fixtures for data tests: random-init feature models (demos/tests only) and a prepared demo subset."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gpt_sovits_train.features.random_init import make_all

REPO_ROOT = Path(__file__).resolve().parents[2]


def prepare_config(input_path: Path, output_dir: Path, models: Path, *overrides: str) -> DictConfig:
    """Compose conf/prepare.yaml the way the CLI does, with the random-init extractors on CPU."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(
            "prepare",
            overrides=[
                "prepare/features@features=random_init",
                f"random_models={models}",
                f"input.path={input_path}",
                f"output_dir={output_dir}",
                "features.ssl.device=cpu",
                "features.bert.device=cpu",
                "features.speaker.device=cpu",
                "progress=false",
                "threads_per_worker=1",
                *overrides,
            ],
        )


@pytest.fixture(scope="session")
def make_prepare_config():
    """``prepare_config`` as a fixture, so test modules need not import this conftest by path."""
    return prepare_config


@pytest.fixture(scope="session")
def random_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("random_models")
    make_all(root, seed=0)
    return root

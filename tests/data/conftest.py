"""Fixtures for data tests: random-init feature models (demos/tests only) and a prepared demo subset."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gpt_sovits_train.features.random_init import make_all

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_LIST = REPO_ROOT / "data" / "demo" / "demo.list"


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


def demo_subset(folder: Path, per_speaker: int) -> Path:
    """A .list with the first ``per_speaker`` English, Mandarin and mixed lines of each demo speaker."""
    lines = DEMO_LIST.read_text(encoding="utf-8").splitlines()
    chosen = []
    for speaker in ("ava", "bo"):
        own = [line for line in lines if line.split("|")[1] == speaker]
        english = [line for line in own if line.split("|")[2] == "en"]
        chinese = [line for line in own if line.split("|")[2] == "zh"]
        mixed = [line for line in chinese if any(c.isascii() and c.isalpha() for c in line.split("|")[3])]
        pure = [line for line in chinese if line not in mixed]
        picked = (english[:per_speaker] + pure[:per_speaker] + mixed[:per_speaker])
        chosen.extend(picked)
    absolute = [f"{DEMO_LIST.parent / line.split('|', 1)[0]}|{line.split('|', 1)[1]}" for line in chosen]
    path = folder / "subset.list"
    path.write_text("\n".join(absolute) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory, random_models) -> Path:
    """The demo corpus subset (2 speakers × 2 × en/zh/mixed = 12 utterances) prepared into shards."""
    from gpt_sovits_train.data.prepare import prepare

    work = tmp_path_factory.mktemp("demo_prep")
    cfg = prepare_config(demo_subset(work, 2), work / "shards", random_models, "split.val_fraction=0.2")
    prepare(cfg)
    return work / "shards"

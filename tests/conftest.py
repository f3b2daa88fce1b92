"""Shared pytest fixtures: where the reference fixtures live, deterministic torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    """Folder with the GPT-SoVITS v2 parity fixtures (``GST_REFERENCE_DIR`` overrides the default)."""
    return Path(os.environ.get("GST_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference")).resolve()


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    path = reference_dir()
    if not path.is_dir():
        pytest.fail(f"reference fixtures not found at {path}; set GST_REFERENCE_DIR to the folder holding them")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def _offline_env():
    """No test may reach the network: W&B offline, Hugging Face offline."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_SILENT", "true")
    yield

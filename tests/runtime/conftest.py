"""Tiny v2 networks from the vendored reference fixtures (real weights layout, tiny sizes) for runtime tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="session")
def tiny_gpt_weights(ref_dir: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(str(ref_dir / "tiny_t2s.safetensors"))
    return {k[len("weight.") :]: v for k, v in tensors.items() if k.startswith("weight.")}


@pytest.fixture(scope="session")
def tiny_gpt_heads(ref_dir: Path) -> int:
    """Attention heads of the fixture's network, read from its JSON (another fixture set may use other sizes)."""
    return int(json.loads((ref_dir / "tiny_t2s.json").read_text())["config"]["model"]["head"])


@pytest.fixture(scope="session")
def build_tiny_sovits(ref_dir: Path):
    """``build(precision)`` → the tiny v2 generator with the fixture's weights, prepared for inference."""
    from gpt_sovits_train.inference.loading import sovits_network_from_v2_config
    from gpt_sovits_train.inference.sovits_runtime import prepare_sovits_for_inference
    from gpt_sovits_train.interchange.gpt_sovits_v2 import POSTERIOR_ENCODER_PREFIX, load_weights_strict

    tensors = load_file(str(ref_dir / "tiny_sovits.safetensors"))
    config = json.loads((ref_dir / "tiny_sovits.json").read_text())["config"]
    weights = {k[7:]: v for k, v in tensors.items() if k.startswith("weight.")}

    def build(precision: str) -> torch.nn.Module:
        network = sovits_network_from_v2_config(config)
        load_weights_strict(network, weights, ignore_prefixes=(POSTERIOR_ENCODER_PREFIX,))
        return prepare_sovits_for_inference(network, precision)

    return build

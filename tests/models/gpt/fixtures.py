"""Load the tiny v2 T2S fixture (config, weights, tensors) into our model; everything comes from the files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from gpt_sovits_train.interchange.checkpoints import gpt_config_from_v2
from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel, load_v2_state_dict


def load_tiny_t2s(ref_dir: Path) -> tuple[Text2SemanticModel, dict, dict[str, torch.Tensor]]:
    meta = json.loads((ref_dir / "tiny_t2s.json").read_text())
    tensors = load_file(str(ref_dir / "tiny_t2s.safetensors"))
    model = Text2SemanticModel(GPTConfig(**gpt_config_from_v2(meta["config"])))
    load_v2_state_dict(
        model, {k.removeprefix("weight."): v.float() for k, v in tensors.items() if k.startswith("weight.")}
    )
    return model.eval(), meta, tensors


def assert_close_as_recommended(actual: torch.Tensor, name: str, meta: dict, tensors: dict) -> None:
    """Compare with ``output.<name>`` using the fixture's recommended tolerance (exact for integers)."""
    node = meta["recommended_tolerances"][f"output.{name}"]
    expected = tensors[f"output.{name}"]
    if node == "exact":
        torch.testing.assert_close(actual.to(expected.dtype).reshape(expected.shape), expected, rtol=0, atol=0)
    else:
        torch.testing.assert_close(
            actual.float().reshape(expected.shape), expected, atol=node["atol"], rtol=node["rtol"]
        )

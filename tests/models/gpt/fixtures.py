"""Load the tiny v2 T2S fixture (config, weights, tensors) into our model; everything comes from the files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel, load_v2_state_dict


def config_from_v2(model_cfg: dict) -> GPTConfig:
    """v2 config dict → ours. v2 ignores ``linear_units``: its FFN is always 4 × hidden."""
    return GPTConfig(
        phoneme_vocab_size=model_cfg["phoneme_vocab_size"],
        vocab_size=model_cfg["vocab_size"],
        embedding_dim=model_cfg["embedding_dim"],
        hidden_dim=model_cfg["hidden_dim"],
        num_heads=model_cfg["head"],
        num_layers=model_cfg["n_layer"],
        ffn_dim=4 * model_cfg["hidden_dim"],
    )


def load_tiny_t2s(ref_dir: Path) -> tuple[Text2SemanticModel, dict, dict[str, torch.Tensor]]:
    meta = json.loads((ref_dir / "tiny_t2s.json").read_text())
    tensors = load_file(str(ref_dir / "tiny_t2s.safetensors"))
    model = Text2SemanticModel(config_from_v2(meta["config"]["model"]))
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

"""Put weights from any supported file into a network built from config.

Accepted files: our Lightning checkpoints (``state_dict`` with the ``net.`` attribute prefix), exported
``.safetensors``, and official GPT-SoVITS v2 ``.ckpt``/``.pth`` files. All go through the safe loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from gpt_sovits_train.interchange.gpt_sovits_v2 import (
    GPT_PREFIX,
    POSTERIOR_ENCODER_PREFIX,
    V2FormatError,
    load_weights_strict,
    read_gpt_v2,
    read_sovits_v2,
)
from gpt_sovits_train.interchange.safe_load import load_checkpoint

LIGHTNING_NET_PREFIX = "net."


def strip_prefix(weights: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with it removed (others dropped): a LightningModule's ``net.*`` → the network's keys."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def network_weights(path: str | Path, kind: str) -> dict[str, torch.Tensor]:
    """Read the network weights (our key names) for ``kind`` "gpt" or "sovits" from any supported file."""
    if kind not in ("gpt", "sovits"):
        raise ValueError(f"kind must be 'gpt' or 'sovits', got {kind!r}")
    path = Path(path)
    raw = load_checkpoint(path)
    if "weight" in raw:  # official v2 file
        return (read_gpt_v2(path) if kind == "gpt" else read_sovits_v2(path)).weights
    if "state_dict" in raw:  # our Lightning checkpoint, or an official s1 training checkpoint
        state = raw["state_dict"]
        for prefix in (LIGHTNING_NET_PREFIX, GPT_PREFIX):
            found = strip_prefix(state, prefix)
            if found:
                return found
        raise V2FormatError(f"{path}: state_dict has no '{LIGHTNING_NET_PREFIX}' keys; is it a {kind} checkpoint?")
    if all(isinstance(v, torch.Tensor) for v in raw.values()):  # safetensors / plain state dict
        return {k: v for k, v in raw.items()}
    raise V2FormatError(f"{path}: unrecognised checkpoint layout (top-level keys {sorted(raw)[:8]})")


def load_network(network: nn.Module, path: str | Path, kind: str) -> nn.Module:
    """Load ``path`` into ``network`` (strict, readable errors) and switch it to eval mode."""
    weights = network_weights(path, kind)
    ignore = (POSTERIOR_ENCODER_PREFIX,) if kind == "sovits" else ()
    load_weights_strict(network, weights, ignore_prefixes=ignore)
    return network.eval()


def gpt_config_from_v2(config: dict) -> dict:
    """Keyword arguments for ``models.gpt.GPTConfig`` from the ``model`` section of a v2 s1 config."""
    model = config.get("model", config)
    hidden = int(model["hidden_dim"])
    return {
        "phoneme_vocab_size": int(model["phoneme_vocab_size"]),
        "vocab_size": int(model["vocab_size"]),
        "embedding_dim": int(model["embedding_dim"]),
        "hidden_dim": hidden,
        "num_heads": int(model["head"]),
        "num_layers": int(model["n_layer"]),
        "ffn_dim": 4 * hidden,  # v2 ignores linear_units: the FFN is always 4x hidden
    }


def gpt_network_from_v2(path: str | Path) -> nn.Module:
    """Build our GPT network sized by a v2 ``.ckpt``'s own config and load its weights."""
    from gpt_sovits_train.interchange.gpt_sovits_v2 import read_gpt_v2
    from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel

    checkpoint = read_gpt_v2(path)
    network = Text2SemanticModel(GPTConfig(**gpt_config_from_v2(checkpoint.config)))
    load_weights_strict(network, checkpoint.weights)
    return network.eval()


def sovits_network_from_v2_config(config: dict) -> nn.Module:
    """Build our SoVITS generator from a v2 s2 config (``train``/``data``/``model`` sections).

    Keys the generator does not take (``n_speakers``, ``version``, ``resblock`` …) are v2 bookkeeping and skipped.
    """
    import inspect

    from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator

    accepted = set(inspect.signature(SoVITSGenerator.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in config.get("model", {}).items() if k in accepted}
    data, train = config.get("data", {}), config.get("train", {})
    if "filter_length" in data:
        kwargs["spec_channels"] = int(data["filter_length"]) // 2 + 1
    if "segment_size" in train and "hop_length" in data:
        kwargs["segment_size"] = int(train["segment_size"]) // int(data["hop_length"])
    return SoVITSGenerator(**kwargs)


def sovits_network_from_v2(path: str | Path) -> nn.Module:
    """Build our SoVITS generator sized by a v2 ``.pth``'s own config and load its weights (no ``enc_q``)."""
    from gpt_sovits_train.interchange.gpt_sovits_v2 import read_sovits_v2

    checkpoint = read_sovits_v2(path)
    network = sovits_network_from_v2_config(checkpoint.config)
    load_weights_strict(network, checkpoint.weights, ignore_prefixes=(POSTERIOR_ENCODER_PREFIX,))
    return network.eval()


def network_config_beside(checkpoint: str | Path) -> dict | None:
    """The ``model.net`` config of the training run that wrote ``checkpoint``, or None.

    ``gst-train`` writes ``resolved_config.yaml`` into its run folder and checkpoints into ``<run>/checkpoints/``,
    so a checkpoint of ours is enough to rebuild its network: the user need not repeat the preset.
    """
    from omegaconf import OmegaConf

    path = Path(checkpoint).resolve()
    for folder in (path.parent, path.parent.parent):
        resolved = folder / "resolved_config.yaml"
        if resolved.is_file():
            net = OmegaConf.select(OmegaConf.load(resolved), "model.net")
            return OmegaConf.to_container(net, resolve=True) if net is not None else None
    return None


def build_network(net_cfg: Mapping | nn.Module | None, checkpoint: str | Path, kind: str) -> nn.Module:
    """Network for ``kind`` with weights loaded: from ``net_cfg`` when given (a config, or a network Hydra already
    built from one), else from the config of the run that wrote ``checkpoint``, else (official v2 files) from the
    file's own config."""
    from hydra.utils import instantiate

    if isinstance(net_cfg, nn.Module):
        return load_network(net_cfg, checkpoint, kind)
    if net_cfg is None:
        net_cfg = network_config_beside(checkpoint)
    if net_cfg is not None:
        return load_network(instantiate(net_cfg), checkpoint, kind)
    raw = load_checkpoint(Path(checkpoint))
    if "weight" in raw:
        return gpt_network_from_v2(checkpoint) if kind == "gpt" else sovits_network_from_v2(checkpoint)
    raise ValueError(
        f"cannot tell which {kind} network {checkpoint} holds: no resolved_config.yaml in its run folder and no "
        f"v2 config inside. Pass {kind}.net=<the model.net node of conf/model/{kind}/<preset>.yaml>."
    )

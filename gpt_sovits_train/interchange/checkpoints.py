"""Network weights from any supported file, each file deserialized once, always through the safe loader.

Accepted files: our Lightning checkpoints (``state_dict`` with the ``net.`` attribute prefix), exported
``.safetensors``, official GPT-SoVITS v2 GPT ``.ckpt`` / SoVITS ``.pth`` files and official s1 training
checkpoints. :func:`read_network_file` is the one reader: it calls :func:`~.safe_load.load_checkpoint` once and
hands the loaded dict to the v2 parsers, so a synthesis that needs the weights *and* the file's own config (head
count, sizes) reads the file once. Synthesis, export, publishing and fine-tune initialisation all come here;
``docs/security.md`` lists every entry point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt_sovits_train.interchange.gpt_sovits_v2 import (
    GPT_PREFIX,
    POSTERIOR_ENCODER_PREFIX,
    V2FormatError,
    gpt_v2_from_raw,
    load_weights_strict,
    sovits_v2_from_raw,
)
from gpt_sovits_train.interchange.safe_config import check_travelling_config
from gpt_sovits_train.interchange.safe_load import load_checkpoint, plain, read_version_header

LIGHTNING_NET_PREFIX = "net."
KINDS = ("gpt", "sovits")


@dataclass
class NetworkFile:
    """What one file holds for one network: weights under our key names, and the config an official v2 file
    carries (``None`` for our checkpoints and safetensors, whose config lives beside them)."""

    path: Path
    kind: str
    weights: dict[str, torch.Tensor]
    v2_config: dict[str, Any] | None = None


def strip_prefix(weights: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with it removed (others dropped): a LightningModule's ``net.*`` → the network's keys."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def read_network_file(path: str | Path, kind: str) -> NetworkFile:
    """Read the network weights (our key names) for ``kind`` "gpt" or "sovits" from any supported file, once."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'gpt' or 'sovits', got {kind!r}")
    path = Path(path)
    stamped = kind == "sovits" and path.is_file() and path.suffix != ".safetensors"
    header = read_version_header(path) if stamped else None  # 2 bytes; only SoVITS files carry a version tag
    raw = load_checkpoint(path)
    if "weight" in raw:  # official v2 file
        parsed = gpt_v2_from_raw(raw, path) if kind == "gpt" else sovits_v2_from_raw(raw, path, header)
        return NetworkFile(path, kind, parsed.weights, parsed.config)
    if "state_dict" in raw:  # our Lightning checkpoint, or an official s1 training checkpoint
        state = raw["state_dict"]
        for prefix in (LIGHTNING_NET_PREFIX, GPT_PREFIX):
            found = strip_prefix(state, prefix)
            if found:
                return NetworkFile(path, kind, found)
        raise V2FormatError(f"{path}: state_dict has no '{LIGHTNING_NET_PREFIX}' keys; is it a {kind} checkpoint?")
    if kind == "sovits" and isinstance(raw.get("model"), Mapping):  # an official G_*.pth training file
        parsed = sovits_v2_from_raw(raw, path, header)
        return NetworkFile(path, kind, parsed.weights, parsed.config or None)
    if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):  # safetensors / plain state dict
        return NetworkFile(path, kind, dict(raw))
    raise V2FormatError(f"{path}: unrecognised checkpoint layout (top-level keys {sorted(raw)[:8]})")


def network_weights(path: str | Path, kind: str) -> dict[str, torch.Tensor]:
    """Just the weights of :func:`read_network_file`."""
    return read_network_file(path, kind).weights


def load_network(network: nn.Module, path: str | Path | NetworkFile, kind: str) -> nn.Module:
    """Load a file (or one already read) into ``network`` (strict, readable errors) and switch it to eval mode.
    Configs name this function (``clone`` builds a semantic extractor with it), so the keywords stay as they are."""
    file = path if isinstance(path, NetworkFile) else read_network_file(path, kind)
    ignore = (POSTERIOR_ENCODER_PREFIX,) if kind == "sovits" else ()
    load_weights_strict(network, file.weights, ignore_prefixes=ignore)
    return network.eval()


def gpt_config_from_v2(config: Mapping[str, Any]) -> dict[str, int]:
    """Keyword arguments for ``models.gpt.GPTConfig`` from a v2 s1 config (or its ``model`` section) — the one
    mapping from v2's names to ours."""
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


def sovits_network_from_v2_config(config: Mapping[str, Any]) -> nn.Module:
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


def network_from_v2_file(file: NetworkFile) -> nn.Module:
    """Our network sized by an official v2 file's own config, with its weights loaded (eval mode)."""
    if file.v2_config is None:
        raise ValueError(f"{file.path} carries no v2 config to size the {file.kind} network from")
    if file.kind == "gpt":
        from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel

        network: nn.Module = Text2SemanticModel(GPTConfig(**gpt_config_from_v2(file.v2_config)))
    else:
        network = sovits_network_from_v2_config(file.v2_config)
    return load_network(network, file, file.kind)


def gpt_network_from_v2(path: str | Path) -> nn.Module:
    """Our GPT network sized by a v2 ``.ckpt``'s own config, weights loaded."""
    return network_from_v2_file(read_network_file(path, "gpt"))


def sovits_network_from_v2(path: str | Path) -> nn.Module:
    """Our SoVITS generator sized by a v2 ``.pth``'s own config, weights loaded (no ``enc_q``)."""
    return network_from_v2_file(read_network_file(path, "sovits"))


def _tensors_to_start_from(raw: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("weight", "model", "state_dict"):
        if isinstance(raw.get(key), Mapping):
            return {k: v for k, v in raw[key].items() if isinstance(v, torch.Tensor)}
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def init_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors to start fine-tuning from: the weights of an official v2 file (``weight``), a G_/D_ training file
    (``model``), one of our checkpoints (``state_dict``) or a plain state dict / safetensors, keys as stored."""
    return _tensors_to_start_from(load_checkpoint(path))


def load_gpt_init(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Fine-tune init of the GPT network from an official v2 ``.ckpt`` (``model.`` keys), an s1 training checkpoint
    or one of ours (``net.`` keys); strict, so a file of another size or generation fails with its key list.
    Returns the file's v2 config (empty when it has none)."""
    raw = load_checkpoint(path)
    source = _tensors_to_start_from(raw)
    weights = strip_prefix(source, GPT_PREFIX) or strip_prefix(source, LIGHTNING_NET_PREFIX)
    if not weights:
        raise V2FormatError(f"{path}: no 'model.' or 'net.' GPT weights (top-level keys {sorted(raw)[:8]})")
    target_dtype = next(model.parameters()).dtype
    load_weights_strict(model, {k: v.to(target_dtype) for k, v in weights.items()})
    return plain(raw.get("config", {}))


RESOLVED_CONFIG = "resolved_config.yaml"


def network_config_beside(checkpoint: str | Path) -> dict | None:
    """The ``model.net`` config of the training run that wrote ``checkpoint``, or None.

    ``gst-train`` writes ``resolved_config.yaml`` into its run folder and checkpoints into ``<run>/checkpoints/``,
    so a checkpoint of ours is enough to rebuild its network: the user need not repeat the preset. The file
    travels with downloaded checkpoints, so every ``_target_`` in it is checked against our own network classes
    (:func:`~gpt_sovits_train.interchange.safe_config.check_travelling_config`) before it is returned.
    """
    from omegaconf import OmegaConf

    path = Path(checkpoint).resolve()
    for folder in (path.parent, path.parent.parent):
        resolved = folder / RESOLVED_CONFIG
        if resolved.is_file():
            net = OmegaConf.select(OmegaConf.load(resolved), "model.net")
            if net is None:
                return None
            net_cfg = OmegaConf.to_container(net, resolve=False)
            check_travelling_config(net_cfg, f"{resolved} (model.net)")
            return net_cfg
    return None

"""Read and write official GPT-SoVITS v2 weight files (GPT ``s1`` ``.ckpt`` and SoVITS ``s2`` ``.pth``).

Layouts (from the v2 manifest's ``checkpoint_formats``):

* GPT ``.ckpt``: ``{"weight": {"model.<key>": float16}, "config": <s1 yaml dict>, "info": "GPT-e<epoch>"}``.
* SoVITS ``.pth``: ``{"weight": {<key>: float16} without enc_q.*, "config": utils.HParams,
  "info": "<e>epoch_<s>iteration"}``.

Our networks use exactly the reference key names (``docs/design.md``), so import/export is a matter of prefixes,
dtypes and dropped keys. Versions other than v2 have different key sets or shapes and are rejected with a message
that names what differs, because silently loading a v1 embedding table or a v3 CFM decoder would produce noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt_sovits_train.interchange.safe_load import (
    CheckpointReadError,
    V2HParams,
    load_checkpoint,
    plain,
    read_version_header,
    save_with_v2_hparams,
)

GPT_PREFIX = "model."
GPT_TEXT_EMBEDDING = "ar_text_embedding.word_embeddings.weight"
SOVITS_TEXT_EMBEDDING = "enc_p.text_embedding.weight"
V2_PHONEME_VOCAB = 732
V1_GPT_PHONEME_VOCAB = 512  # s1longer.yaml (v1) uses a 512-row phoneme table
V1_SOVITS_SYMBOLS = 322
POSTERIOR_ENCODER_PREFIX = "enc_q."
# Keys that only exist in other SoVITS generations: the v3/v4 flow-matching decoder and v2Pro speaker branch.
FOREIGN_SOVITS_MARKERS: dict[str, str] = {
    "cfm.": "v3/v4 (conditional flow-matching decoder)",
    "sv_emb.": "v2Pro/v2ProPlus (speaker-verification embedding branch)",
    "ge_to512.": "v2Pro/v2ProPlus (speaker-verification embedding branch)",
}


class V2FormatError(ValueError):
    """The file is not a GPT-SoVITS v2 file of the expected kind; the message says what was found instead."""


@dataclass
class V2Checkpoint:
    """Weights (our key names, float32), the stored config as plain dicts, and the ``info`` string."""

    kind: str  # "gpt" or "sovits"
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    info: str = ""
    version: str = "v2"
    extra: dict[str, Any] = field(default_factory=dict)


def _as_float32(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v.clone() for k, v in weights.items()}


def _as_float16(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in weights.items()}


def _weights_of(raw: Mapping[str, Any], path: Path) -> Mapping[str, torch.Tensor]:
    weights = raw.get("weight")
    if not isinstance(weights, Mapping) or not weights:
        found = sorted(raw)[:8]
        hint = " (a Lightning training checkpoint: use its state_dict)" if "state_dict" in raw else ""
        raise V2FormatError(f"{path} has no 'weight' dict; top-level keys are {found}{hint}")
    return weights


def detect_gpt_version(weights: Mapping[str, torch.Tensor]) -> str:
    """Return "v2" for a v2-compatible GPT table (also used by v3/v4), "v1" for the 512-row table; else raise."""
    table = weights.get(GPT_TEXT_EMBEDDING)
    if table is None:
        raise V2FormatError(f"no '{GPT_TEXT_EMBEDDING}' tensor: this is not a GPT-SoVITS GPT (s1) checkpoint")
    rows = int(table.shape[0])
    if rows == V2_PHONEME_VOCAB:
        return "v2"
    if rows == V1_GPT_PHONEME_VOCAB:
        return "v1"
    raise V2FormatError(f"GPT phoneme table has {rows} rows; v2 has {V2_PHONEME_VOCAB} and v1 {V1_GPT_PHONEME_VOCAB}")


def detect_sovits_version(weights: Mapping[str, torch.Tensor], header: str | None = None) -> str:
    """Classify a SoVITS generator state dict: "v2", or the name of the other generation it belongs to."""
    if header not in (None, "v2"):
        return header
    for prefix, name in FOREIGN_SOVITS_MARKERS.items():
        if any(k.startswith(prefix) for k in weights):
            return name
    table = weights.get(SOVITS_TEXT_EMBEDDING)
    if table is None:
        if any(k.startswith(GPT_PREFIX) for k in weights):
            return "GPT (s1) weights"
        return "unknown (no enc_p.text_embedding.weight)"
    rows = int(table.shape[0])
    if rows == V1_SOVITS_SYMBOLS:
        return "v1"
    if rows == V2_PHONEME_VOCAB:
        return "v2"
    return f"unknown ({rows}-symbol text embedding)"


def read_gpt_v2(path: str | Path) -> V2Checkpoint:
    """Read an official GPT ``.ckpt`` (or a Lightning one with ``model.``-prefixed ``state_dict``) as v2 weights."""
    return gpt_v2_from_raw(load_checkpoint(path), Path(path))


def gpt_v2_from_raw(raw: Mapping[str, Any], path: Path) -> V2Checkpoint:
    """:func:`read_gpt_v2` on a dict the safe loader already read (so callers deserialize a file once)."""
    source = raw["state_dict"] if "state_dict" in raw and "weight" not in raw else _weights_of(raw, path)
    if not any(k.startswith(GPT_PREFIX) for k in source):
        raise V2FormatError(f"{path}: no 'model.'-prefixed keys; it is not a GPT (s1) checkpoint (SoVITS .pth?)")
    weights = {k[len(GPT_PREFIX) :]: v for k, v in source.items() if k.startswith(GPT_PREFIX)}
    version = detect_gpt_version(weights)
    if version != "v2":
        raise V2FormatError(
            f"{path} is a GPT-SoVITS {version} GPT checkpoint ({GPT_TEXT_EMBEDDING} has "
            f"{weights[GPT_TEXT_EMBEDDING].shape[0]} rows, v2 needs {V2_PHONEME_VOCAB}); retrain or use a v2 file"
        )
    return V2Checkpoint("gpt", _as_float32(weights), plain(raw.get("config", {})), str(raw.get("info", "")))


def read_sovits_v2(path: str | Path) -> V2Checkpoint:
    """Read an official SoVITS ``.pth`` (exported weights, pretrained s2G or a G_ resume file) as v2 weights."""
    path = Path(path)
    header = read_version_header(path)
    return sovits_v2_from_raw(load_checkpoint(path), path, header)


def sovits_v2_from_raw(raw: Mapping[str, Any], path: Path, header: str | None) -> V2Checkpoint:
    """:func:`read_sovits_v2` on a dict the safe loader already read; ``header`` is the file's 2-byte version tag."""
    source = raw["model"] if "model" in raw and "weight" not in raw else _weights_of(raw, path)
    version = detect_sovits_version(source, header)
    if version != "v2":
        raise V2FormatError(
            f"{path} holds GPT-SoVITS {version} SoVITS weights, not v2; this framework builds the v2 generator "
            "(732-symbol text embedding, no cfm/sv_emb branches). Use a v2 SoVITS file."
        )
    config = plain(raw.get("config", {}))
    return V2Checkpoint("sovits", _as_float32(source), config, str(raw.get("info", "")), extra={"header": header})


def write_gpt_v2(
    weights: Mapping[str, torch.Tensor], config: Mapping[str, Any], path: str | Path, epoch: int = 0
) -> Path:
    """Write a GPT ``.ckpt`` the official inference loads strictly: ``model.`` keys, float16, config dict, info."""
    detect_gpt_version(weights)
    payload = {
        "weight": {GPT_PREFIX + k: v for k, v in _as_float16(weights).items()},
        "config": plain(dict(config)),
        "info": f"GPT-e{epoch}",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def write_sovits_v2(
    weights: Mapping[str, torch.Tensor], config: Mapping[str, Any], path: str | Path, epoch: int = 0, steps: int = 0
) -> Path:
    """Write a SoVITS ``.pth``: float16 weights without ``enc_q``, config pickled as ``utils.HParams``, info string."""
    if detect_sovits_version(weights) != "v2":
        raise V2FormatError("refusing to export: the weights are not a v2 SoVITS generator")
    exported = {k: v for k, v in _as_float16(weights).items() if "enc_q" not in k}
    hparams = V2HParams(**plain(dict(config)))
    save_with_v2_hparams({"weight": exported, "config": hparams, "info": f"{epoch}epoch_{steps}iteration"}, path)
    return Path(path)


def load_weights_strict(network: nn.Module, weights: Mapping[str, torch.Tensor], ignore_prefixes: tuple[str, ...] = ()):
    """Copy ``weights`` into ``network`` and fail with a readable list of missing/unexpected/mis-shaped keys.

    ``ignore_prefixes`` names parts a file legitimately lacks (``enc_q.`` in exported SoVITS files), which keep
    the network's own values.
    """
    own = network.state_dict()
    missing = [k for k in own if k not in weights and not k.startswith(ignore_prefixes)]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k}: file {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:

        def head(items: list[str]) -> str:
            return ", ".join(items[:6]) + (f" … (+{len(items) - 6})" if len(items) > 6 else "")

        raise V2FormatError(
            "the weights do not fit this network; build it with the file's config. "
            f"missing: [{head(missing)}] unexpected: [{head(unexpected)}] shape mismatches: [{head(shapes)}]"
        )
    merged = {k: weights[k].to(own[k].dtype) if k in weights else own[k] for k in own}
    network.load_state_dict(merged, strict=True)
    return network


def check_readable(path: str | Path) -> None:
    """Raise :class:`CheckpointReadError`/:class:`V2FormatError` early with a clear message (used by the CLI)."""
    raw = load_checkpoint(path)
    if "weight" not in raw and "state_dict" not in raw and "model" not in raw:
        raise CheckpointReadError(f"{path}: no weights found (top-level keys {sorted(raw)[:8]})")


def gpt_v2_config(weights: Mapping[str, torch.Tensor], heads: int, max_sec: int = 54) -> dict[str, Any]:
    """The s1 YAML dict a v2 GPT file carries, with sizes read off the weights by the network's own
    ``config_from_weights`` (heads cannot be read off shapes, so it is given)."""
    from gpt_sovits_train.models.gpt.model import config_from_weights

    sizes = config_from_weights(weights, heads)
    if sizes.hidden_dim % heads:
        raise ValueError(f"hidden size {sizes.hidden_dim} is not divisible by heads={heads}")
    return {
        "train": {"seed": 1234, "if_dpo": False},
        "data": {"max_sec": int(max_sec), "pad_val": 1024},
        "model": {
            "vocab_size": sizes.vocab_size,
            "phoneme_vocab_size": sizes.phoneme_vocab_size,
            "embedding_dim": sizes.embedding_dim,
            "hidden_dim": sizes.hidden_dim,
            "head": int(heads),
            "linear_units": sizes.ffn_dim,
            "n_layer": sizes.num_layers,
            "dropout": 0,
            "EOS": 1024,
            "random_bert": 0,
        },
        "inference": {"top_k": 15},
    }


def sovits_v2_hparams(model: Mapping[str, Any], data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The s2.json-shaped dict (train/data/model) for a v2 SoVITS file; ``model`` holds the generator kwargs."""
    base_data = {
        "max_wav_value": 32768.0,
        "sampling_rate": 32000,
        "filter_length": 2048,
        "hop_length": 640,
        "win_length": 2048,
        "n_mel_channels": 128,
        "mel_fmin": 0.0,
        "mel_fmax": None,
        "add_blank": True,
        "n_speakers": 300,
        "cleaned_text": True,
    }
    base_data.update(dict(data or {}))
    model_cfg = {"semantic_frame_rate": "25hz", "freeze_quantizer": True, **dict(model), "version": "v2"}
    return {
        "train": {"segment_size": 20480, "c_mel": 45, "c_kl": 1.0, "fp16_run": False},
        "data": base_data,
        "model": model_cfg,
        "version": "v2",
    }

"""Build the network a checkpoint belongs to and put its weights in.

Reading weights is :mod:`gpt_sovits_train.interchange.checkpoints` (one safe reader for every file kind); this
module adds what synthesis needs on top: the network config, from the caller, from the ``resolved_config.yaml`` of
the run that wrote the checkpoint (checked by :mod:`~gpt_sovits_train.interchange.safe_config` before anything is
instantiated, because that file may have been downloaded with the weights), or from an official v2 file itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import nn

from gpt_sovits_train.interchange.checkpoints import (
    gpt_config_from_v2,
    gpt_network_from_v2,
    load_network,
    network_from_v2_file,
    network_weights,
    read_network_file,
    sovits_network_from_v2,
    sovits_network_from_v2_config,
)
from gpt_sovits_train.interchange.safe_config import check_travelling_config

__all__ = [
    "build_network",
    "gpt_config_from_v2",
    "gpt_network_from_v2",
    "load_network",
    "network_config_beside",
    "network_weights",
    "read_network_file",
    "sovits_network_from_v2",
    "sovits_network_from_v2_config",
]

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
            plain = OmegaConf.to_container(net, resolve=False)
            check_travelling_config(plain, f"{resolved} (model.net)")
            return plain
    return None


def build_network(net_cfg: Mapping | nn.Module | None, checkpoint: str | Path, kind: str) -> nn.Module:
    """Network for ``kind`` with weights loaded: from ``net_cfg`` when given (a config, or a network Hydra already
    built from one), else from the config of the run that wrote ``checkpoint``, else (official v2 files) from the
    file's own config. The checkpoint is deserialized once."""
    from hydra.utils import instantiate

    if isinstance(net_cfg, nn.Module):
        return load_network(net_cfg, checkpoint, kind)
    if net_cfg is None:
        net_cfg = network_config_beside(checkpoint)
    if net_cfg is not None:
        return load_network(instantiate(net_cfg), checkpoint, kind)
    file = read_network_file(checkpoint, kind)
    if file.v2_config:
        return network_from_v2_file(file)
    raise ValueError(
        f"cannot tell which {kind} network {checkpoint} holds: no {RESOLVED_CONFIG} in its run folder and no "
        f"v2 config inside. Pass {kind}.net=<the model.net node of conf/model/{kind}/<preset>.yaml>."
    )

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
    RESOLVED_CONFIG,
    gpt_config_from_v2,
    gpt_network_from_v2,
    load_network,
    network_config_beside,
    network_from_v2_file,
    network_weights,
    read_network_file,
    sovits_network_from_v2,
    sovits_network_from_v2_config,
)

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

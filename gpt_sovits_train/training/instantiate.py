"""Build lists of callbacks and loggers from config groups whose entries are named ``_target_`` nodes.

Config groups hold a mapping (``callbacks.model_checkpoint: {...}``) rather than a list so that one entry can be
overridden or removed from the command line (``callbacks.throughput.log_every_n_steps=50``,
``~callbacks.nan_guard``); these helpers turn the mapping into the list Lightning wants.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def _instantiate_named(group: DictConfig | None, kind: str, expected: type) -> list[Any]:
    if group is None:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"the {kind} config must be a mapping of name -> {{_target_: ...}}, got {type(group).__name__}")
    built = []
    for name, node in group.items():
        if node is None:  # an entry disabled with `callbacks.foo=null`
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ValueError(f"{kind}.{name} has no _target_; every {kind} entry must name the class to build")
        obj = hydra.utils.instantiate(node)
        if not isinstance(obj, expected):
            raise TypeError(f"{kind}.{name} built a {type(obj).__name__}, which is not a {expected.__name__}")
        log.info("%s: %s <%s>", kind, name, node._target_)
        built.append(obj)
    return built


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    """Lightning callbacks from the ``callbacks`` group (empty list when the group is null)."""
    return _instantiate_named(callbacks_cfg, "callbacks", Callback)


def instantiate_loggers(logger_cfg: DictConfig | None) -> list[Logger]:
    """Lightning loggers from the ``logger`` group (empty list when the group is null)."""
    return _instantiate_named(logger_cfg, "logger", Logger)

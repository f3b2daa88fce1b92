"""Configs that arrive with weights are data: check every ``_target_`` before Hydra instantiates anything.

A ``resolved_config.yaml`` beside a downloaded checkpoint, or the ``synthesis`` section of a voice bundle's
``voice.json``, is handed to :func:`hydra.utils.instantiate`, which imports and *calls* whatever ``_target_`` names.
Hydra blocks ``os.system``, but ``shutil.copyfile`` or ``builtins.open`` would run, so such a file could overwrite
any file the user can write. :func:`check_travelling_config` therefore walks the whole tree (every nested
``_target_``, also inside lists) and accepts a target only when

* it names a module of ours that builds networks or feature extractors (:data:`ALLOWED_PACKAGES`), and
* it resolves to a class or function *defined* there under exactly that name — ``gpt_sovits_train.features.ssl.shutil
  .copyfile`` resolves through an import inside our module to ``shutil.copyfile`` and is refused.

OmegaConf interpolations (``${oc.env:...}``) are refused too: a file we wrote is already resolved, so one in a
travelling config can only be an attempt to read the environment. Configs the user composes on the command line are
the user's own code and are not checked.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

#: Packages whose classes/functions a travelling config may name: the networks and the feature extractors.
ALLOWED_PACKAGES: tuple[str, ...] = ("gpt_sovits_train.models.", "gpt_sovits_train.features.")


class UnsafeConfigError(ValueError):
    """A config that travelled with weights names something we do not build; nothing was instantiated."""


def _resolve(target: str) -> Any:
    """Import the longest module prefix of ``target`` (only our own packages get here) and walk attributes."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return obj
    return None


def check_target(target: Any, where: str, source: str) -> None:
    """Raise :class:`UnsafeConfigError` unless ``target`` is a class/function of ours that builds networks/features."""
    hint = f"only classes and functions defined in {', '.join(p.rstrip('.') for p in ALLOWED_PACKAGES)} are allowed"
    if not isinstance(target, str) or not target.startswith(ALLOWED_PACKAGES):
        raise UnsafeConfigError(
            f"refused {source}: {where}._target_={target!r} is not one of ours ({hint}); nothing was instantiated"
        )
    obj = _resolve(target)
    defined_as = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    if not (inspect.isclass(obj) or inspect.isfunction(obj)) or defined_as != target:
        found = "nothing" if obj is None else defined_as if defined_as != "." else type(obj).__name__
        raise UnsafeConfigError(
            f"refused {source}: {where}._target_={target!r} resolves to {found}, not a class or "
            f"function defined under that name ({hint}); nothing was instantiated"
        )


def check_travelling_config(config: Any, source: str, where: str = "") -> None:
    """Check every ``_target_`` in ``config`` (recursively) and refuse interpolations; ``source`` names the file."""
    if isinstance(config, Mapping):
        if "_target_" in config:
            check_target(config["_target_"], where or "<root>", source)
        for key, value in config.items():
            check_travelling_config(value, source, f"{where}.{key}" if where else str(key))
    elif isinstance(config, Sequence) and not isinstance(config, (str, bytes)):
        for index, value in enumerate(config):
            check_travelling_config(value, source, f"{where}[{index}]")
    elif isinstance(config, str) and "${" in config:
        raise UnsafeConfigError(
            f"refused {source}: {where or '<root>'} holds an interpolation {config!r}; a config "
            "that travels with weights must be plain data. Nothing was instantiated"
        )

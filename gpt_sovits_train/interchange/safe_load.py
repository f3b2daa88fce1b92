"""Load checkpoints without ever executing code hidden in a pickle.

A ``.ckpt``/``.pth`` file is a pickle, and unpickling an untrusted pickle can run arbitrary code. Every checkpoint
this package reads therefore goes through :func:`load_checkpoint`, which either reads safetensors (no code at all)
or calls ``torch.load(weights_only=True)``. The one non-tensor class that official GPT-SoVITS files need is the
``utils.HParams`` object stored as the SoVITS ``config``; it is mapped onto :class:`V2HParams`, a plain attribute bag
that never runs user code, through torch's allow-list. Anything else in the pickle makes the load fail with
:class:`UnsafeCheckpointError` instead of being executed.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors

# v2Pro/ProPlus and v3/v4 LoRA SoVITS files overwrite the zip magic "PK" with a 2-byte version tag.
VERSION_HEADERS: dict[bytes, str] = {
    b"00": "v1",
    b"01": "v2",
    b"02": "v3",
    b"03": "v3-lora",
    b"04": "v4-lora",
    b"05": "v2Pro",
    b"06": "v2ProPlus",
}
ZIP_MAGIC = b"PK"
ZIP_LOCAL_HEADER_TAIL = b"\x03\x04"  # bytes 2-3 of a zip file, kept when the magic is overwritten
HPARAMS_PICKLE_NAME = "utils.HParams"


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint holds pickled objects other than tensors and plain containers; it was not executed."""


class CheckpointReadError(RuntimeError):
    """The file is not a readable checkpoint (truncated, corrupt or not a torch/safetensors file)."""


class V2HParams:
    """Stand-in for GPT-SoVITS' ``utils.HParams``: nested attribute bag supporting ``obj.key`` and ``obj["key"]``.

    Unpickling fills ``__dict__`` directly (the original class has no ``__setstate__``), so loading one never calls
    anything but ``object.__new__``. Pickling one writes the global name ``utils.HParams`` (see
    :func:`save_with_v2_hparams`) so the official loader rebuilds its own class from our files.
    """

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            self.__dict__[key] = V2HParams(**value) if isinstance(value, Mapping) else value

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.__dict__[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def keys(self):
        return self.__dict__.keys()

    def items(self):
        return self.__dict__.items()

    def to_dict(self) -> dict[str, Any]:
        """Recursively convert to plain dicts (what the rest of the package works with)."""
        return {k: v.to_dict() if isinstance(v, V2HParams) else v for k, v in self.__dict__.items()}

    def __repr__(self) -> str:
        return f"V2HParams({self.to_dict()!r})"


def read_version_header(path: str | Path) -> str | None:
    """Return the GPT-SoVITS version tag stored in the first two bytes, or ``None`` for a plain zip/other file."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return VERSION_HEADERS.get(head)


def _torch_source(path: Path) -> Path | io.BytesIO:
    """What to hand ``torch.load``: the path itself for a plain zip/legacy file (no copy in memory), or the bytes
    with the zip magic restored for a version-stamped v2 file."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) < 4:
        raise CheckpointReadError(f"{path} is only {len(head)} bytes long; the file is truncated or empty")
    if head[:2] in VERSION_HEADERS:
        # Restore the zip magic the official writer overwrote, exactly as its reader does.
        return io.BytesIO(ZIP_MAGIC + path.read_bytes()[2:])
    if head[:2] != ZIP_MAGIC and head[2:4] == ZIP_LOCAL_HEADER_TAIL:
        # A zip whose magic was overwritten with a tag we do not know: a newer GPT-SoVITS generation, not a pickle.
        tag = head[:2].decode("ascii", errors="backslashreplace")
        known = ", ".join(f"'{k.decode()}' ({v})" for k, v in VERSION_HEADERS.items())
        raise CheckpointReadError(
            f"{path} has an unknown version header '{tag}' (known: {known}); it comes from a GPT-SoVITS version "
            "this framework does not read"
        )
    return path


def _rewound(source: Path | io.BytesIO) -> Path | io.BytesIO:
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return source


# Parts of a Lightning checkpoint that inference never needs; they may legitimately hold pickled callables
# (``functools.partial`` optimizer factories from Hydra ``_partial_`` configs in ``hyper_parameters``).
IGNORABLE_KEYS = frozenset(
    {"hyper_parameters", "datamodule_hyper_parameters", "callbacks", "loops", "optimizer_states", "lr_schedulers"}
)
#: What resuming training may drop: only the hyperparameter records (resume never reads them; checkpoints written
#: before they were stored as plain data hold Hydra partials there). Loop, callback and optimizer state must load.
HYPERPARAMETER_KEYS = frozenset({"hyper_parameters", "datamodule_hyper_parameters"})
REFUSAL_ADVICE = "nothing was executed. Only load checkpoints you trust; convert a trusted one to safetensors instead"


def load_checkpoint(
    path: str | Path, map_location: Any = "cpu", droppable: frozenset[str] = IGNORABLE_KEYS
) -> dict[str, Any]:
    """Read a checkpoint safely: safetensors directly, torch pickles with ``weights_only=True``.

    SoVITS ``HParams`` configs come back as :class:`V2HParams`; call :func:`plain` to turn them into dicts.
    Top-level parts named in ``droppable`` (by default those of Lightning checkpoints that inference never uses:
    ``hyper_parameters`` holding optimizer partials, loop and callback state) may reference other globals: those
    are read as inert placeholders, never called, and dropped. Raises :class:`UnsafeCheckpointError` (one line,
    naming what the pickle asked for) when anything else would need code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return dict(load_safetensors(str(path), device=str(map_location)))
        except Exception as error:  # safetensors raises its own SafetensorError type
            raise CheckpointReadError(f"{path} is not a valid safetensors file: {error}") from error
    source = _torch_source(path)
    try:
        with torch.serialization.safe_globals([(V2HParams, HPARAMS_PICKLE_NAME)]):
            loaded = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        try:
            return _load_inert(_rewound(source), path, map_location, droppable)
        except UnsafeCheckpointError:
            raise
        except Exception as inert_error:  # the inert pass failed for another reason: report the original refusal
            raise UnsafeCheckpointError(
                f"refused to load {path}: it contains pickled Python objects that are not plain weights "
                f"({_unsupported_reason(error)}); {REFUSAL_ADVICE}"
            ) from inert_error
    except (RuntimeError, EOFError, ValueError, KeyError) as error:
        raise CheckpointReadError(
            f"cannot read {path} as a torch checkpoint ({error}); the file is corrupt, truncated or not a checkpoint"
        ) from error
    if not isinstance(loaded, Mapping):
        raise CheckpointReadError(f"{path} holds a {type(loaded).__name__}, expected a dict of weights/config")
    return dict(loaded)


def _unsupported_reason(error: Exception) -> str:
    """Pick the refused global's name out of torch's long multi-paragraph message."""
    for line in str(error).splitlines():
        if "Unsupported global" in line:
            return line.split("Unsupported global:", 1)[-1].split(" was not")[0].strip()
    return type(error).__name__


class _Inert:
    """Placeholder for a pickled global outside the allow-list: records what was asked for, never runs it."""

    pickled_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        # A pickle may call what a placeholder stands for (e.g. ``getattr(obj, "append")("x")``): stay inert.
        return type(self)(*args)

    def __repr__(self) -> str:
        return f"<not loaded: {self.pickled_name}>"


class _InertUnpickler(pickle.Unpickler):
    """Resolves only torch's weights-only allow-list; every other global becomes an inert :class:`_Inert` subclass."""

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        allowed = _allowed_globals()
        if full in allowed:
            return allowed[full]
        return type(name, (_Inert,), {"pickled_name": full})


def _allowed_globals() -> dict[str, Any]:
    from torch._weights_only_unpickler import _get_allowed_globals

    return {**_get_allowed_globals(), HPARAMS_PICKLE_NAME: V2HParams}


class _InertPickleModule:
    Unpickler = _InertUnpickler
    Pickler = pickle.Pickler
    __name__ = "pickle"


def _inert_paths(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Where inert placeholders sit inside a loaded object: (dotted key path, the pickled global it named)."""
    if isinstance(value, _Inert):
        return [(path or "<root>", value.pickled_name)]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _inert_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _inert_paths(v, f"{path}[{i}]")]
    return []


def _load_inert(source: Path | io.BytesIO, path: Path, map_location: Any, droppable: frozenset[str]) -> dict[str, Any]:
    """Second chance for checkpoints whose *droppable* parts hold callables: load them as inert placeholders,
    drop those parts, and refuse if anything else would have needed code."""
    loaded = torch.load(source, map_location=map_location, weights_only=False, pickle_module=_InertPickleModule)
    found = _inert_paths(loaded)
    blocked = [(where, name) for where, name in found if where.split(".")[0].split("[")[0] not in droppable]
    if blocked:
        where = ", ".join(f"{w} ({n})" for w, n in blocked[:5])
        raise UnsafeCheckpointError(f"refused to load {path}: {where} would run pickled code; {REFUSAL_ADVICE}")
    if not isinstance(loaded, Mapping):
        raise CheckpointReadError(f"{path} holds a {type(loaded).__name__}, expected a dict of weights/config")
    return {k: v for k, v in loaded.items() if not _inert_paths(v)}


def plain(value: Any) -> Any:
    """Turn :class:`V2HParams` (possibly nested in dicts) into plain dicts; other values pass through."""
    if isinstance(value, V2HParams):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


class _V2Pickler(pickle._Pickler):  # the pure-Python pickler lets us rename one global
    """Pickler that writes :class:`V2HParams` under the name ``utils.HParams`` the official loader expects."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is V2HParams:
            module, qualname = HPARAMS_PICKLE_NAME.split(".")
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _V2PickleModule:
    """Duck-typed ``pickle_module`` for :func:`torch.save` (it only needs ``Pickler``)."""

    Pickler = _V2Pickler
    Unpickler = pickle.Unpickler
    __name__ = "pickle"


def save_with_v2_hparams(obj: Mapping[str, Any], path: str | Path, version_header: bytes | None = None) -> None:
    """``torch.save`` in the zip format, naming :class:`V2HParams` ``utils.HParams``; optionally stamp a 2-byte tag."""
    buffer = io.BytesIO()
    torch.save(dict(obj), buffer, pickle_module=_V2PickleModule, pickle_protocol=2)
    data = buffer.getvalue()
    if version_header is not None:
        if version_header not in VERSION_HEADERS:
            raise ValueError(f"unknown version header {version_header!r}; known: {sorted(VERSION_HEADERS)}")
        data = version_header + data[2:]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)

"""Checkpoint loading never executes pickled code, and official-style HParams configs survive a round trip."""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gpt_sovits_train.interchange.safe_load import (
    CheckpointReadError,
    UnsafeCheckpointError,
    V2HParams,
    load_checkpoint,
    plain,
    read_version_header,
    save_with_v2_hparams,
)

# Unpickling must leave no trace on disk: a list's ``append`` would be pickled with a *copy* of the list, so the
# side effect is a directory that only running the payload creates.
MARKER = Path(tempfile.gettempdir()) / f"gst_safe_load_executed_{os.getpid()}"


class _CodeInPickle:
    """An object whose unpickling would call a function (``os.mkdir``): the attack safe loading must refuse."""

    def __reduce__(self):
        return (os.mkdir, (str(MARKER),))


def _hparams() -> V2HParams:
    return V2HParams(train={"epochs": 8}, data={"sampling_rate": 32000}, model={"version": "v2"}, name="demo")


def test_hparams_config_round_trips_as_plain_dict(tmp_path: Path) -> None:
    path = tmp_path / "s2.pth"
    save_with_v2_hparams({"weight": {"a": torch.arange(3.0).half()}, "config": _hparams(), "info": "1epoch"}, path)
    loaded = load_checkpoint(path)
    assert plain(loaded["config"]) == {
        "train": {"epochs": 8},
        "data": {"sampling_rate": 32000},
        "model": {"version": "v2"},
        "name": "demo",
    }
    assert loaded["config"].data.sampling_rate == 32000
    assert loaded["weight"]["a"].dtype == torch.float16


def test_written_config_unpickles_as_official_utils_hparams(tmp_path: Path, monkeypatch) -> None:
    """The official loader imports ``utils.HParams``; emulate that module and load with plain pickle."""

    class HParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    module = types.ModuleType("utils")
    module.HParams = HParams
    monkeypatch.setitem(sys.modules, "utils", module)
    path = tmp_path / "s2.pth"
    save_with_v2_hparams({"config": _hparams()}, path)
    loaded = torch.load(path, weights_only=False)
    assert type(loaded["config"]) is HParams
    assert type(loaded["config"].data) is HParams
    assert loaded["config"].data.sampling_rate == 32000


def test_version_header_is_read_and_restored(tmp_path: Path) -> None:
    path = tmp_path / "pro.pth"
    save_with_v2_hparams({"config": _hparams()}, path, version_header=b"05")
    assert path.read_bytes()[:2] == b"05"
    assert read_version_header(path) == "v2Pro"
    assert plain(load_checkpoint(path)["config"])["name"] == "demo"


def test_pickle_with_code_is_refused_and_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"weight": {}, "payload": _CodeInPickle()}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not MARKER.exists()


def test_plain_pickle_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.ckpt"
    path.write_bytes(pickle.dumps({"x": _CodeInPickle()}))
    with pytest.raises((UnsafeCheckpointError, CheckpointReadError)):
        load_checkpoint(path)
    assert not MARKER.exists()


def test_corrupt_and_truncated_files_give_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"weight": {"a": torch.ones(1000)}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointReadError, match="corrupt"):
        load_checkpoint(truncated)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_safetensors_load(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(2, 2)}, str(path))
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2, 2))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not really")
    with pytest.raises(CheckpointReadError):
        load_checkpoint(bad)


def test_lightning_checkpoint_with_partial_hparams_loads_weights_only(tmp_path: Path) -> None:
    """Our Lightning checkpoints keep Hydra ``_partial_`` optimizers in hyper_parameters: read, never run, dropped."""
    import functools

    path = tmp_path / "last.ckpt"
    weights = {"net.w": torch.ones(3)}
    hparams = {"optimizer": functools.partial(torch.optim.AdamW, lr=1e-3), "payload": _CodeInPickle()}
    torch.save({"state_dict": weights, "hyper_parameters": hparams, "epoch": 1}, path)
    loaded = load_checkpoint(path)
    assert set(loaded) == {"state_dict", "epoch"}
    assert torch.equal(loaded["state_dict"]["net.w"], torch.ones(3))
    assert not MARKER.exists()


def test_code_inside_weights_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"net.w": _CodeInPickle()}, "hyper_parameters": {}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"state_dict\.net\.w"):
        load_checkpoint(path)
    assert not MARKER.exists()


def test_unknown_version_header_is_named_not_called_code(tmp_path: Path) -> None:
    """A v2-style file stamped with a tag we do not know is a format problem, not a pickle with code."""
    good = tmp_path / "good.pth"
    save_with_v2_hparams({"weight": {"a": torch.ones(2)}, "config": _hparams(), "info": "1epoch"}, good)
    stamped = tmp_path / "future.pth"
    stamped.write_bytes(b"42" + good.read_bytes()[2:])
    with pytest.raises(CheckpointReadError, match="unknown version header '42'") as error:
        load_checkpoint(stamped)
    assert "code" not in str(error.value)
    assert read_version_header(stamped) is None

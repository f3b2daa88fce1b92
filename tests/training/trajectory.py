"""Shared pieces of the v2 trajectory tests: where the fixtures are, fixed batches as a resumable DataModule, and a
callback that records what every batch and optimizer step of a real ``Trainer`` run did."""

from __future__ import annotations

import copy
import json
import os
import zlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from safetensors.torch import load_file

FIXTURE_DIR = Path(os.environ.get("GST_TRAINING_FIXTURES", Path(__file__).resolve().parents[1] / "fixtures/training"))


def load_fixture(name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``<name>.json`` and ``<name>.safetensors`` from the fixture folder (scripts/make_training_fixtures.py)."""
    meta_path = FIXTURE_DIR / f"{name}.json"
    if not meta_path.is_file():
        pytest.fail(f"{meta_path} missing: run GST_REFERENCE_SRC=<GPT-SoVITS checkout> "
                    "python scripts/make_training_fixtures.py (or point GST_TRAINING_FIXTURES at a fixture folder)")
    tensors_path = FIXTURE_DIR / f"{name}.safetensors"
    return json.loads(meta_path.read_text()), (load_file(str(tensors_path)) if tensors_path.is_file() else {})


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


class _Epoch(torch.utils.data.IterableDataset):
    def __init__(self, owner: FixedBatches) -> None:
        self.owner = owner

    def __iter__(self):
        skip, self.owner.skip = self.owner.skip, 0  # a restored position applies to the resumed epoch only
        yield from self.owner.next_epoch()[skip:]


class FixedBatches(pl.LightningDataModule):
    """The same batches every epoch (or the given list per epoch), in order; resumable mid-epoch through
    DataPositionTracker's load_state_dict."""

    def __init__(self, batches: list[dict[str, torch.Tensor]] | None = None,
                 epochs: list[list[dict[str, torch.Tensor]]] | None = None) -> None:
        super().__init__()
        self.batches, self.epochs = batches, epochs
        self.skip = 0
        self.epoch = 0

    def next_epoch(self) -> list[dict[str, torch.Tensor]]:
        self.epoch += 1
        if self.epochs is None:
            return self.batches
        return self.epochs[self.epoch - 1] if self.epoch <= len(self.epochs) else []

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # the resumed epoch is the saved one (per-epoch batch lists must continue from it, not from the first)
        self.epoch = int(state_dict["epoch"])
        self.skip = int(state_dict["batches_consumed"])

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Epoch(self), batch_size=None)


class StepRecorder(pl.Callback):
    """Per batch the optimized loss; per optimizer step the learning rate of each group (as the step used it)."""

    def __init__(self, loss_key: str = "loss") -> None:
        self.loss_key = loss_key
        self.batch_loss: list[float] = []
        self.step_lr: list[list[float]] = []
        self.step_optimizers: list[Any] = []
        self.step_stats: list[Any] = []  # the optimizer's ``last_stats`` after the step (ScaledAdam's grad norms)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs[self.loss_key] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.batch_loss.append(float(loss))
        while len(self.step_stats) < len(self.step_optimizers):
            optimizer = self.step_optimizers[len(self.step_stats)]
            self.step_stats.append(copy.deepcopy(getattr(optimizer, "last_stats", None)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.step_lr.append([group["lr"] for group in optimizer.param_groups])
        self.step_optimizers.append(optimizer)


def seeded_like(name: str, shape: list[int], mean: float, std: float, seed: int) -> torch.Tensor:
    """N(mean, std) from a generator keyed on (seed, tensor name): the same tensor on both sides, nothing stored."""
    if std == 0.0:
        return torch.full(shape, mean)
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    return mean + std * torch.randn(shape, generator=g)


def initial_from_stats(stats: dict[str, list], seed: int) -> dict[str, torch.Tensor]:
    """Initial weights from per-tensor ``[shape, mean, std, dtype]`` (a fixture's ``init_stats``): networks too
    large to store keep their scale per tensor and are redrawn identically by the fixture script and the tests."""
    out = {}
    for name, (shape, mean, std, dtype) in stats.items():
        value = seeded_like(name, shape, mean, std, seed)
        out[name] = value if dtype == "float32" else value.round().to(getattr(torch, dtype))
    return out


def scaled_adam_problem(run: dict, dtype: torch.dtype = torch.float64):
    """The network (two linear layers + scalars alpha, beta) and a closure-free loss for step ``i``."""
    torch.manual_seed(run["seed"])
    w = run["widths"]
    net = torch.nn.Sequential(torch.nn.Linear(w[0], w[1]), torch.nn.Tanh(), torch.nn.Linear(w[1], w[2]))
    net.register_parameter("alpha", torch.nn.Parameter(torch.tensor([0.5])))
    net.register_parameter("beta", torch.nn.Parameter(torch.tensor([0.3])))
    net = net.to(dtype)
    g = torch.Generator().manual_seed(run["seed"] + 3)
    inputs = [torch.randn(run["batch"], w[0], generator=g, dtype=dtype)
              * (run["spike"] if i % run["spike_every"] == 0 else 1.0) for i in range(run["steps"])]

    def loss(i: int) -> torch.Tensor:
        return (net(inputs[i]) ** 2).sum() * net.alpha + net.beta**2

    return net, loss

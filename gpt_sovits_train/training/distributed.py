"""Process-group start-up that fails fast and says which rank is missing.

``torch.distributed.init_process_group`` on its own waits (30 min by default) and then reports only
"1/2 clients joined". Every rank here first checks in at a TCP store hosted by rank 0 under its own key;
rank 0 waits a bounded time, and if someone is missing, every rank stops with the list of absent ranks, so
the user knows which node or process to look at. The same store then seeds the real process group.
"""

from __future__ import annotations

import atexit
import logging
import socket
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)

_ARRIVED = "gst/rendezvous/arrived/{}"
_GO = "gst/rendezvous/go"
_ABORT = "gst/rendezvous/abort"


class RendezvousTimeoutError(RuntimeError):
    """Raised when not every rank reached the rendezvous in time."""


def rendezvous(host: str, port: int, rank: int, world_size: int, timeout_s: float) -> dist.TCPStore:
    """Meet all ``world_size`` ranks at ``host:port`` (rank 0 hosts) within ``timeout_s``; returns the store."""
    store = open_store(host, port, rank, world_size, timeout_s)
    meet(store, rank, world_size, timeout_s)
    return store


def open_store(host: str, port: int, rank: int, world_size: int, timeout_s: float) -> dist.TCPStore:
    """Rank 0 hosts the store at ``host:port`` (port 0: the OS picks a free one, read it back from
    ``store.port``, so nothing can take it between choosing and binding); the other ranks connect to it."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}; check NODE_RANK/LOCAL_RANK and num_nodes")
    try:
        return dist.TCPStore(
            host, port, world_size=None, is_master=rank == 0, timeout=timedelta(seconds=timeout_s),
            wait_for_workers=False,
        )
    except (RuntimeError, OSError) as err:  # DistStoreError / DistNetworkError subclass RuntimeError
        raise RendezvousTimeoutError(
            f"rank {rank} of {world_size} could not reach rank 0 at {host}:{port} within {timeout_s:.0f} s: "
            f"{err}. Check that rank 0 started, that MASTER_ADDR/MASTER_PORT point at it, and that the port is open."
        ) from err


def meet(store: dist.TCPStore, rank: int, world_size: int, timeout_s: float) -> None:
    """Check in under this rank's key; rank 0 waits for every rank (or names the missing ones), the others wait
    for rank 0's go."""
    deadline = time.monotonic() + timeout_s
    store.set(_ARRIVED.format(rank), socket.gethostname())
    if rank == 0:
        _wait_for_everyone(store, world_size, deadline, store.host, store.port, timeout_s)
        store.set(_GO, "1")
    else:
        _wait_for_go(store, rank, deadline, timeout_s)


def _wait_for_everyone(store: dist.TCPStore, world_size: int, deadline: float, host: str, port: int,
                       timeout_s: float) -> None:
    while True:
        missing = [r for r in range(world_size) if not store.check([_ARRIVED.format(r)])]
        if not missing:
            return
        if time.monotonic() > deadline:
            store.set(_ABORT, ",".join(map(str, missing)))
            names = ", ".join(str(r) for r in missing)
            raise RendezvousTimeoutError(
                f"rank(s) {names} of {world_size} did not join the process group at {host}:{port} within "
                f"{timeout_s:.0f} s. Check that those processes/nodes were launched (trainer.num_nodes, "
                "trainer.devices) and can reach this host; raise trainer.strategy.rendezvous_timeout_s for slow starts."
            )
        time.sleep(0.05)


def _wait_for_go(store: dist.TCPStore, rank: int, deadline: float, timeout_s: float) -> None:
    while not store.check([_GO]):
        if store.check([_ABORT]):
            missing = store.get(_ABORT).decode()
            raise RendezvousTimeoutError(f"rank {rank}: rendezvous aborted by rank 0; rank(s) {missing} did not join")
        if time.monotonic() > deadline + 5.0:
            raise RendezvousTimeoutError(f"rank {rank}: rank 0 never confirmed the rendezvous within {timeout_s:.0f} s")
        time.sleep(0.05)


class RendezvousDDPStrategy(DDPStrategy):
    """Lightning's DDP with a bounded, rank-naming rendezvous before the process group is created.

    ``rendezvous_timeout_s`` bounds start-up; ``collective_timeout_s`` bounds each later collective (a hung
    rank then errors instead of stalling the job forever).
    """

    def __init__(self, *args: Any, rendezvous_timeout_s: float = 300.0, collective_timeout_s: float = 1800.0,
                 **kwargs: Any) -> None:
        if rendezvous_timeout_s <= 0 or collective_timeout_s <= 0:
            raise ValueError("rendezvous_timeout_s and collective_timeout_s must be positive seconds")
        kwargs.setdefault("timeout", timedelta(seconds=collective_timeout_s))
        super().__init__(*args, **kwargs)
        self.rendezvous_timeout_s = float(rendezvous_timeout_s)

    def _setup_model(self, model: torch.nn.Module) -> DistributedDataParallel:
        """Manual optimization (the SoVITS GAN) back-propagates the discriminator and the generator losses
        separately, and each backward leaves the other network's parameters untouched: DDP must then look for
        unused parameters, or its reducer errors out. Automatic optimization keeps the faster default."""
        module = self.lightning_module
        if module is not None and not module.automatic_optimization:
            self._ddp_kwargs["find_unused_parameters"] = True
        return super()._setup_model(model)

    def setup_distributed(self) -> None:
        reset_seed()
        self.set_world_ranks()
        self._process_group_backend = self._get_process_group_backend()
        if dist.is_initialized():
            return
        env = self.cluster_environment
        assert env is not None
        store = rendezvous(env.main_address, env.main_port, self.global_rank, self.world_size,
                           self.rendezvous_timeout_s)
        kwargs: dict[str, Any] = {"timeout": self._timeout}
        if self.root_device.type == "cuda":
            kwargs["device_id"] = self.root_device
        dist.init_process_group(self._process_group_backend, store=store, rank=self.global_rank,
                                world_size=self.world_size, **kwargs)
        if self._process_group_backend == "nccl":
            atexit.register(_destroy_process_group)
        log.info("process group ready: rank %d of %d (%s)", self.global_rank, self.world_size,
                 self._process_group_backend)


def _destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distributed_world() -> tuple[int, int]:
    """(rank, world size) of the current process; (0, 1) when no process group exists."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


__all__ = ["RendezvousDDPStrategy", "RendezvousTimeoutError", "distributed_world", "rendezvous"]

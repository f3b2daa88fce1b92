"""The DDP rendezvous names the rank that never arrived, and succeeds when all do."""

from __future__ import annotations

import socket
import threading

import pytest

from gpt_sovits_train.training.distributed import RendezvousTimeoutError, meet, open_store, rendezvous


def _host(world_size: int, timeout_s: float):
    """Rank 0's store on a port the OS picked and that stays bound (no probe-then-reuse race)."""
    store = open_store("127.0.0.1", 0, 0, world_size, timeout_s)
    return store, store.port


def test_missing_rank_is_named():
    store0, port = _host(3, 2.0)
    with pytest.raises(RendezvousTimeoutError, match=r"rank\(s\) 2 of 3 did not join"):
        errors: list[BaseException] = []

        def rank1() -> None:
            try:
                rendezvous("127.0.0.1", port, 1, 3, timeout_s=2.0)
            except BaseException as err:  # rank 1 is told the rendezvous was aborted
                errors.append(err)

        thread = threading.Thread(target=rank1)
        thread.start()
        try:
            meet(store0, 0, 3, timeout_s=2.0)
        finally:
            thread.join(timeout=15)
            assert errors and "aborted" in str(errors[0]) and "2" in str(errors[0])


def test_all_ranks_meet():
    store0, port = _host(2, 10.0)
    results: dict[int, object] = {}

    def join(rank: int) -> None:
        if rank == 0:
            meet(store0, 0, 2, timeout_s=10.0)
            results[0] = store0
        else:
            results[rank] = rendezvous("127.0.0.1", port, rank, 2, timeout_s=10.0)

    threads = [threading.Thread(target=join, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert set(results) == {0, 1}
    assert results[1].get("gst/rendezvous/arrived/0")  # every rank sees every check-in


def test_unreachable_rank0_is_reported():
    with socket.socket() as held:  # bound by the OS (port 0) but never listening: connections are refused, and no
        held.bind(("127.0.0.1", 0))  # other process can take the port while the test runs
        port = held.getsockname()[1]
        with pytest.raises(RendezvousTimeoutError, match="could not reach rank 0"):
            rendezvous("127.0.0.1", port, 1, 2, timeout_s=1.0)


def test_bad_rank_rejected():
    with pytest.raises(ValueError, match="outside"):
        rendezvous("127.0.0.1", 1, 3, 2, timeout_s=1.0)

"""The DDP rendezvous names the rank that never arrived, and succeeds when all do."""

from __future__ import annotations

import socket
import threading

import pytest

from gpt_sovits_train.training.distributed import RendezvousTimeoutError, rendezvous


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_rank_is_named():
    with pytest.raises(RendezvousTimeoutError, match=r"rank\(s\) 2 of 3 did not join"):
        port = _free_port()
        errors: list[BaseException] = []

        def rank1() -> None:
            try:
                rendezvous("127.0.0.1", port, 1, 3, timeout_s=2.0)
            except BaseException as err:  # rank 1 is told the rendezvous was aborted
                errors.append(err)

        thread = threading.Thread(target=rank1)
        thread.start()
        try:
            rendezvous("127.0.0.1", port, 0, 3, timeout_s=2.0)
        finally:
            thread.join(timeout=15)
            assert errors and "aborted" in str(errors[0]) and "2" in str(errors[0])


def test_all_ranks_meet():
    port = _free_port()
    results: dict[int, object] = {}

    def join(rank: int) -> None:
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

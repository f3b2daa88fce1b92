"""Shared pytest fixtures: where the reference fixtures live, deterministic torch settings, the demo shards.

``make test`` runs the suite on two pytest-xdist workers (one per core): each worker's torch then uses one
thread, fixtures that build shared data take a file lock and build it once per run, a test file stays on one worker
and so do the live-cluster tests (``xdist_group``)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from tests.helpers import SUMMARY, prepare_demo_shards
from tests.reference_fixtures import reference_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:  # two workers on two cores: one intra-op thread each, not two threads each fighting for a core
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """xdist hands out whole test files (their module fixtures, such as the docs test's workspace, are built once),
    and all live SLURM tests to one worker (they share one local cluster, a session fixture)."""
    for item in items:
        path = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group("cluster" if path.startswith("tests/cluster/") else path))


def run_shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this run sees (the run's base temp; each worker's own is below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if XDIST_WORKER else base


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    path = reference_dir()
    if not path.is_dir():
        pytest.fail(f"reference fixtures not found at {path}; set GST_REFERENCE_DIR to the folder holding them")
    return path


@pytest.fixture(scope="session")
def t2s_meta(ref_dir: Path) -> dict:
    """``tiny_t2s.json``: the config, call recipes and tolerances every GPT parity test reads its sizes from."""
    return json.loads((ref_dir / "tiny_t2s.json").read_text())


@pytest.fixture(scope="session")
def sovits_meta(ref_dir: Path) -> dict:
    """``tiny_sovits.json``: the SoVITS fixture's config (segment, channels, heads), calls and tolerances."""
    return json.loads((ref_dir / "tiny_sovits.json").read_text())


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory) -> Path:
    """WebDataset shards of 16 demo utterances (2 speakers; English, Mandarin and mixed lines; one validation
    utterance each), features from small random-init models: made once per run for the data, training and cluster
    tests (the first xdist worker to ask builds them under a lock; read-only after that)."""
    root = run_shared_root(tmp_path_factory) / "demo_data"
    with FileLock(f"{root}.lock"):
        if not (root / "shards" / "manifest.json").is_file():
            prepare_demo_shards(root, 8, chunk=4)
    return root / "shards"


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def _offline_env():
    """No test may reach the network: W&B offline, Hugging Face offline."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_SILENT", "true")
    yield


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 on a free port of 127.0.0.1, reached through the standard AWS environment variables."""
    moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]' (the dev extra)")
    pytest.importorskip("s3fs", reason="pip install s3fs (the cluster extra)")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets in process-wide state: start every test from an empty store (moto's reset endpoint).
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=30)
    env = {
        "AWS_ACCESS_KEY_ID": "gst-test-key",
        "AWS_SECRET_ACCESS_KEY": "gst-test-secret-do-not-log",  # tests check it never leaks
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import fsspec

    fsspec.config.conf.clear()
    try:
        yield env
    finally:
        server.stop()


# --- skips are failures in CI -----------------------------------------------------------------------------------
# A skip hides a test. Under CI (CI=true, which .ci/run sets) every skip fails the run unless its test is listed here
# with the reason CI may legitimately lack what it needs. Everything else a test needs is in the dev/clone/eval extras
# that `make install` installs, so a missing extra or a broken import shows up as a failure, not a quiet "s".
EXPECTED_SKIPS: dict[str, str] = {
    "tests/inference/test_ai_metadata.py::test_written_audio_is_marked[.mp3]": (
        "MP3 writing needs libsndfile >= 1.1 built with LAME/mpg123; some CI images ship an older libsndfile"
    ),
}
_unexpected_skips: list[tuple[str, str]] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown" and not XDIST_WORKER:  # the printing process collects the summary entries
        for name, value in report.user_properties:
            if name == "gst_summary":
                SUMMARY.setdefault(value[0], []).append(value[1])
    if report.skipped and _in_ci() and not any(report.nodeid.startswith(k) for k in EXPECTED_SKIPS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _unexpected_skips.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if _unexpected_skips:
        terminalreporter.section("skips not allowed in CI (tests/conftest.py EXPECTED_SKIPS)", red=True)
        for nodeid, reason in _unexpected_skips:
            terminalreporter.write_line(f"{nodeid}: {reason}")

"""Shared pytest fixtures: where the reference fixtures live, deterministic torch settings, the demo shards.

``make test`` runs the suite on two pytest-xdist workers (one per core): each worker's torch then uses one
thread, fixtures that build shared data take a file lock and build it once per run, a test file stays on one worker
and so do the live-cluster tests (``pytest_xdist_make_scheduler``)."""

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
    # ... and so for every process a test starts (CLIs, DDP ranks, SLURM jobs): OpenMP threads spin while they wait,
    # so two workers' subprocesses with two threads each on two cores ran some tests 5-10x slower than alone
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = "1"


def _test_file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist hands out whole test files (their module fixtures, such as the docs test's workspace, are built once),
    and all live SLURM tests to one worker (they share one local cluster, a session fixture).

    A scheduler rather than ``xdist_group`` marks: xdist 3.8 groups by rewriting ``item._nodeid``, which pytest 9
    no longer reads, so marked tests were spread over the workers (each building the docs workspace, ~8 min)."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection order, heavy files first (see below)

    class FileOrClusterScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _test_file(nodeid)
            return "cluster" if path.startswith("tests/cluster/") else path

    return FileOrClusterScheduling(config, log)


# Files (or folders) that take minutes: handed out first, so that the two workers finish at about the same time
# instead of one starting the docs workspace (~8 min of commands in order) when the other is nearly done.
HEAVY_FIRST = (
    "tests/docs/test_documented_commands.py",
    "tests/cluster/",
    "tests/models/sovits/test_sovits_module.py",
    "tests/runtime/test_gpu_check.py",
    "tests/clone/test_clone_e2e.py",
    "tests/training/test_ddp.py",
    "tests/training/test_resume.py",
    "tests/training/test_v2_trajectory_sovits.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = _test_file(item.nodeid)
        return next((i for i, heavy in enumerate(HEAVY_FIRST) if path.startswith(heavy)), len(HEAVY_FIRST))

    items.sort(key=rank)  # stable: the order within a file is kept


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
    """Sections the tests added (tests/helpers.add_to_summary), printed here: under xdist only this top-level
    conftest is loaded in the printing process, so a sub-folder's conftest could not print them."""
    for section, entries in SUMMARY.items():
        terminalreporter.section(section)
        for line in entries:
            terminalreporter.write_line(str(line))
    if _unexpected_skips:
        terminalreporter.section("skips not allowed in CI (tests/conftest.py EXPECTED_SKIPS)", red=True)
        for nodeid, reason in _unexpected_skips:
            terminalreporter.write_line(f"{nodeid}: {reason}")

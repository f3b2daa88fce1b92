"""A one-node SLURM cluster on this machine, for the live cluster tests.

Debian's ``slurm-wlm`` (slurmctld + slurmd) with its own ``munged``: a fresh key from ``mungekey -c``, a generated
``slurm.conf`` for this host, state, spool, logs and the munge socket all under one temporary folder, free ports.
Nothing is written outside that folder, so it runs next to a system SLURM and leaves nothing behind. Client
commands (``sbatch``, ``squeue``, ``scontrol``, the submitit launcher) find this cluster through ``SLURM_CONF``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
HOW_TO_RUN = (
    "the live SLURM tests need Debian's slurm-wlm and munge and root: "
    "`apt-get install -y slurm-wlm munge` as root (.ci/run does this), then rerun pytest as root"
)


def missing_requirements() -> str | None:
    """Why the cluster cannot start here (None when it can)."""
    if os.geteuid() != 0:
        return "not running as root; " + HOW_TO_RUN
    missing = [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if missing:
        return f"missing {', '.join(missing)}; " + HOW_TO_RUN
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurm:
    """Start/stop munged, slurmctld and slurmd for a single node named after this host (``cpus`` CPUs)."""

    def __init__(self, root: Path, cpus: int = 2) -> None:
        self.root = root
        self.cpus = cpus
        self.host = socket.gethostname()
        self.conf = root / "etc" / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket.2"
        self._processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        for folder in ("etc", "state", "spool", "log"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=gsttest",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    # cred_expire also holds a requeued job back (default 120 s): the preemption test waits less
                    f"AuthInfo=socket={self.munge_socket},cred_expire=10",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool' / 'slurmd-%n'}",
                    f"SlurmctldPidFile={self.root / 'state' / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'state' / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "SchedulerType=sched/backfill",
                    "MpiDefault=none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "ReturnToService=2",
                    "JobRequeue=1",
                    "KillWait=10",
                    "MinJobAge=300",
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=30",
                    "InactiveLimit=0",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    f"PlugStackConfig={self.root / 'etc' / 'plugstack.conf'}",
                    f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (self.root / "etc" / "plugstack.conf").write_text("")

    def _start_munge(self) -> None:
        munge_dir = self.root / "munge"
        munge_dir.mkdir(parents=True, exist_ok=True)
        key = munge_dir / "munge.key"
        subprocess.run([_binary("mungekey"), "-c", "-k", str(key)], check=True, capture_output=True)
        shutil.chown(munge_dir, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        munge_dir.chmod(0o755)
        key.chmod(0o400)
        subprocess.run(
            [
                "runuser",
                "-u",
                "munge",
                "--",
                _binary("munged"),
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
                "--force",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        self._wait(lambda: self.munge_socket.exists(), 10, "munged did not create its socket")

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._write_config()
        self._start_munge()
        env = {**os.environ, **self.env}
        for daemon in ("slurmctld", "slurmd"):
            log = open(self.root / "log" / f"{daemon}.out", "w")  # noqa: SIM115  (owned by the process)
            args = [_binary(daemon), "-D", "-f", str(self.conf)] + (["-i"] if daemon == "slurmctld" else [])
            self._processes.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT))
            if daemon == "slurmctld":
                self._wait(
                    lambda: self.run("scontrol", "ping", check=False).returncode == 0,
                    timeout,
                    "slurmctld did not answer `scontrol ping`",
                )
        self._wait(
            lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False).stdout,
            timeout,
            "the node did not become idle",
        )

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster (``sbatch --wait`` needs a longer ``timeout``)."""
        return subprocess.run(
            list(args), env={**os.environ, **self.env}, capture_output=True, text=True, check=check, timeout=timeout
        )

    def logs(self) -> str:
        """The tail of every daemon log, for assertion messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if any(p.poll() is not None for p in self._processes):
                break
            time.sleep(0.5)
        raise RuntimeError(f"{message}\n{self.logs()}")

    def stop(self) -> None:
        """Cancel what is left, stop the daemons (theirs first, then munged)."""
        if self._processes:
            self.run("scancel", "--full", "--user=root", check=False)
        for process in reversed(self._processes):
            process.terminate()
        for process in reversed(self._processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        pid_file = self.root / "munge" / "munged.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), 15)

    def wait_for_job(self, job_id: str, timeout: float) -> str:
        """Block until the job left the queue; returns its last state from ``scontrol show job``."""
        deadline = time.monotonic() + timeout
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            shown = self.run("scontrol", "show", "job", job_id, check=False).stdout
            states = [part.split("=", 1)[1] for part in shown.split() if part.startswith("JobState=")]
            if states:
                state = states[0]
                if all(
                    s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") for s in states
                ):
                    return state
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s\n{self.logs()}")

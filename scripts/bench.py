#!/usr/bin/env python
"""Run every benchmark in ``gpt_sovits_train.benchmarks`` and print the figures as one JSON object.

Each module there exposes ``run_<name>(quick: bool = False) -> dict``. Workloads and targets are
described in ``../shared/PERFORMANCE.md``; ``--quick`` runs tiny sizes (a smoke check, not figures).

    python scripts/bench.py                    # everything, full sizes
    python scripts/bench.py --only gpt_decode  # names containing a substring
    python scripts/bench.py --quick --out bench.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import gpt_sovits_train.benchmarks as benchmarks_pkg


def discover() -> dict[str, callable]:
    """Map ``module.run_name`` → function for every benchmark function in the package."""
    found = {}
    for info in sorted(pkgutil.iter_modules(benchmarks_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{benchmarks_pkg.__name__}.{info.name}")
        for attr in sorted(dir(module)):
            if attr.startswith("run_") and callable(getattr(module, attr)):
                found[attr[len("run_") :]] = getattr(module, attr)
    return found


def run_isolated(name: str, quick: bool, threads: int) -> dict:
    """Run one benchmark in a fresh interpreter: its peak RSS is then its own, not the largest one so far."""
    code = (
        "import json, sys, torch; sys.path.insert(0, sys.argv[1]); import bench;"
        "torch.set_num_threads(int(sys.argv[4]));"
        "print('@@RESULT@@' + json.dumps(bench.discover()[sys.argv[2]](quick=sys.argv[3] == '1'), default=float))"
    )
    here = str(Path(__file__).resolve().parent)
    proc = subprocess.run(
        [sys.executable, "-c", code, here, name, "1" if quick else "0", str(threads)],
        capture_output=True,
        text=True,
    )
    sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@") :])
    return {"error": f"exit code {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or 'no output'}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every benchmark runs")
    parser.add_argument("--only", action="append", default=[], help="run benchmarks whose name contains this")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (PERFORMANCE.md uses 2)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    report: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "quick": args.quick,
        "results": {},
    }
    failed = False
    for name in discover():
        if args.only and not any(sub in name for sub in args.only):
            continue
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = run_isolated(name, args.quick, args.threads)
        failed = failed or "error" in result
        result["bench_wall_s"] = round(time.perf_counter() - start, 3)
        report["results"][name] = result
    text = json.dumps(report, indent=2, default=float)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

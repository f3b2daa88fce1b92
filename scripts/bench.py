#!/usr/bin/env python
"""Run every benchmark in ``gpt_sovits_train.benchmarks`` and print the figures as one JSON object.

Each module there exposes ``run_<name>(quick: bool = False) -> dict``. Workloads and targets are
described in ``../shared/PERFORMANCE.md``; ``--quick`` runs tiny sizes (a smoke check, not figures).

    python scripts/bench.py                    # everything, full sizes
    python scripts/bench.py --only gpt_decode  # names containing a substring
    python scripts/bench.py --quick --out bench.json
    python scripts/bench.py --reference /path/to/GPT-SoVITS   # + the reference's figures and our ratios to them

Every report starts with ``bounds``: this CPU's ISA flags, read bandwidth and fp32/bf16 GEMM peaks, measured in
the same run (``benchmarks/machine.py``); every decode figure then carries ``fraction_of_bound`` — its tokens/s
over the weight-streaming ceiling at the precision it used. With ``--reference`` the reference implementation
(``scripts/bench_reference.py``) runs in the same session and ``ratios`` compares the PERFORMANCE.md rows.
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
from gpt_sovits_train.benchmarks.machine import decode_bound, gpt_step_weight_count, machine_bounds
from gpt_sovits_train.runtime.cpu import cpu_model


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


def annotate_bounds(results: dict, bandwidth_gbs: float) -> None:
    """Add ``bound`` (weight-streaming ceiling and fraction reached) to every decode figure in ``results``."""
    v2_weights = gpt_step_weight_count(512, 24)
    for name, result in results.items():
        if name.startswith("gpt_decode_b") and "tokens_per_s" in result and result.get("size") == "v2":
            precision = "bf16" if result.get("step_weights") == "bfloat16" else "fp32"
            result["bound"] = decode_bound(
                result["tokens_per_s"], v2_weights, precision, bandwidth_gbs, int(result.get("batch", 1))
            )
        for engine in result.get("engines", {}).values() if name == "gpt_decode_b1_runtimes" else ():
            engine["bound"] = decode_bound(
                engine["tokens_per_s"], engine["step_weights"], engine["weight_precision"], bandwidth_gbs
            )


def run_reference(root: Path, threads: int) -> dict:
    """``scripts/bench_reference.py`` on the checkout at ``root``, in its own process (same session)."""
    script = Path(__file__).resolve().parent / "bench_reference.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--reference", str(root), "--threads", str(threads)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1:] or f"exit code {proc.returncode}"}
    return json.loads(proc.stdout)


def reference_ratios(results: dict, reference: dict) -> dict:
    """PERFORMANCE.md rows as ratios to the reference: speed ratios (> 1 is faster) for decode and training,
    time ratios (< 1 is faster) for SoVITS decode and e2e RTF (the reference's e2e is its GPT + SoVITS time)."""
    ratios: dict = {}

    def speed(ours: float | None, theirs: float | None) -> float | None:
        return round(ours / theirs, 3) if ours and theirs else None

    ref = {k.removeprefix("reference_"): v for k, v in reference.items()}
    ref_b1 = ref.get("gpt_decode_b1", {}).get("tokens_per_s")
    for engine, figures in results.get("gpt_decode_b1_runtimes", {}).get("engines", {}).items():
        ratios[f"gpt_decode_b1[{engine}]_speed"] = speed(figures["tokens_per_s"], ref_b1)
    ratios["gpt_decode_b8_speed"] = speed(
        results.get("gpt_decode_b8", {}).get("tokens_per_s"), ref.get("gpt_decode_b8", {}).get("tokens_per_s")
    )
    ratios["gpt_train_speed"] = speed(
        results.get("gpt_train", {}).get("semantic_tokens_per_s"), ref.get("gpt_train", {}).get("semantic_tokens_per_s")
    )
    ratios["sovits_train_speed"] = speed(
        results.get("sovits_train", {}).get("steps_per_s"), ref.get("sovits_train", {}).get("steps_per_s")
    )
    ref_sovits = ref.get("sovits_decode", {}).get("rtf")
    ratios["sovits_decode_time"] = speed(results.get("sovits_decode", {}).get("rtf"), ref_sovits)
    if ref_b1 and ref_sovits:
        ref_e2e = 250 / ref_b1 / 10 + ref_sovits
        ratios["reference_e2e_rtf"] = round(ref_e2e, 4)
        for engine, figures in results.get("e2e_runtimes", {}).get("engines", {}).items():
            ratios[f"e2e_rtf[{engine}]_time"] = speed(figures["rtf"], ref_e2e)
    return {k: v for k, v in ratios.items() if v is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every benchmark runs")
    parser.add_argument("--only", action="append", default=[], help="run benchmarks whose name contains this")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (PERFORMANCE.md uses 2)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--reference", type=Path, help="GPT-SoVITS checkout: run it too and report ratios")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    report: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "quick": args.quick,
        "bounds": machine_bounds(args.quick),
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
    annotate_bounds(report["results"], report["bounds"]["read_bandwidth_gbs"])
    if args.reference and not args.quick:
        print("[bench] reference ...", file=sys.stderr, flush=True)
        report["reference"] = run_reference(args.reference, args.threads)
        report["ratios"] = reference_ratios(report["results"], report["reference"])
    text = json.dumps(report, indent=2, default=float)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

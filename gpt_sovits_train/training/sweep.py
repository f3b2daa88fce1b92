"""Sweep bookkeeping: one table of every job's overrides and results when a Hydra multirun ends.

Hydra's basic sweeper returns each job's objective to nobody: the grid's outcome would otherwise be scattered
over ``<sweep dir>/<n>/train_result.json``. :class:`CollectSweepResults` (a Hydra callback, registered by
``conf/hparams_search/*.yaml``) gathers them into ``<sweep dir>/sweep_results.json``, best first.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def collect_sweep_results(sweep_dir: str | Path, metric: str | None) -> dict[str, Any]:
    """Rows ``{job, overrides, status, metrics, objective}`` for every job folder under ``sweep_dir``, sorted by
    ``metric`` (lower is better; jobs without it last), and how many jobs left no result."""
    rows, missing = [], []
    jobs = sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    for job in jobs:
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        result_file = job / "train_result.json"
        if not result_file.is_file():
            missing.append(job.name)
            continue
        result = json.loads(result_file.read_text())
        value = result.get("metrics", {}).get(metric) if metric else None
        rows.append({"job": int(job.name), "overrides": overrides, "status": result.get("status"),
                     "objective": value, "metrics": result.get("metrics", {}),
                     "last_checkpoint": result.get("last_checkpoint")})
    rows.sort(key=lambda r: (r["objective"] is None or not math.isfinite(r["objective"]), r["objective"] or 0.0))
    return {"metric": metric, "jobs": rows, "jobs_without_result": missing}


class CollectSweepResults(Callback):
    """Writes ``sweep_results.json`` into the sweep folder when the multirun ends (local launchers; a SLURM
    sweep's jobs end later, there re-run :func:`collect_sweep_results` on the folder)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        table = collect_sweep_results(sweep_dir, config.get("optimized_metric"))
        (sweep_dir / "sweep_results.json").write_text(json.dumps(table, indent=2, default=str) + "\n")
        best = table["jobs"][0] if table["jobs"] else None
        log.info("sweep: %d jobs with results, %d without; best %s = %s (%s) -> %s",
                 len(table["jobs"]), len(table["jobs_without_result"]), table["metric"],
                 best and best["objective"], best and " ".join(best["overrides"]), sweep_dir / "sweep_results.json")

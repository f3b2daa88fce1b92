"""A resumable, skippable runner for a fixed sequence of named steps.

Cloning takes minutes to hours and its middle step (the user fixing ASR transcripts) happens
outside the program, so every finished step leaves a marker file holding its JSON result.
A re-run resumes after the last marker; ``restart_from`` deletes the markers from a step on
(e.g. ``restart_from=prepare`` after editing the ``.list`` file); ``skip`` leaves a step out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

StepResults = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One named unit of work; ``run`` gets the results of the steps before it and returns its own (JSON-able)."""

    name: str
    run: Callable[[StepResults], dict[str, Any]]
    description: str = ""


class StepRunner:
    """Runs steps in order, writing ``<state_dir>/<name>.done.json`` after each one finishes."""

    def __init__(self, state_dir: Path, skip: Sequence[str] = (), restart_from: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.skip = set(skip)
        self.restart_from = restart_from

    def marker(self, name: str) -> Path:
        return self.state_dir / f"{name}.done.json"

    def run(self, steps: Sequence[Step]) -> tuple[StepResults, dict[str, str]]:
        """Return every step's result and how it ended: ``ran``, ``resumed`` (marker found) or ``skipped``."""
        names = [s.name for s in steps]
        unknown = (self.skip | ({self.restart_from} if self.restart_from else set())) - set(names)
        if unknown:
            raise ValueError(f"unknown step name(s) {sorted(unknown)}; the steps are {names}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.restart_from:
            for name in names[names.index(self.restart_from) :]:
                self.marker(name).unlink(missing_ok=True)

        results: StepResults = {}
        status: dict[str, str] = {}
        bar = tqdm(steps, desc="clone", unit="step")
        for step in bar:
            bar.set_postfix_str(step.name)
            marker = self.marker(step.name)
            if step.name in self.skip:
                status[step.name] = "skipped"
                log.info("step %s: skipped by request", step.name)
                continue
            if marker.is_file():
                results[step.name] = json.loads(marker.read_text(encoding="utf-8"))["result"]
                status[step.name] = "resumed"
                log.info("step %s: already done (%s), reusing its result", step.name, marker)
                continue
            log.info("step %s: %s", step.name, step.description or "running")
            started = time.perf_counter()
            result = step.run(results)
            elapsed = time.perf_counter() - started
            results[step.name] = result
            status[step.name] = "ran"
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(json.dumps({"result": result, "seconds": round(elapsed, 2)}, indent=2, ensure_ascii=False),
                           encoding="utf-8")
            tmp.replace(marker)  # atomic: a crash mid-write never leaves a half marker
        return results, status


def require(results: StepResults, step: str, needed_by: str) -> dict[str, Any]:
    """The result of an earlier step, or an error telling the user how to get it."""
    if step not in results:
        raise RuntimeError(
            f"step {needed_by!r} needs the result of step {step!r}, which was skipped and has no marker; "
            f"run it (remove it from skip=) or restart_from={step}"
        )
    return results[step]

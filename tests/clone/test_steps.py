"""Resume, skip and restart semantics of the step runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt_sovits_train.clone.steps import Step, StepRunner, require


def counting_steps(calls: list[str]) -> list[Step]:
    def make(name: str, depends: str | None):
        def run(results):
            calls.append(name)
            base = require(results, depends, name)["value"] if depends else 0
            return {"value": base + 1}

        return Step(name, run)

    return [make("a", None), make("b", "a"), make("c", "b")]


def test_runs_then_resumes_from_markers(tmp_path: Path) -> None:
    calls: list[str] = []
    results, status = StepRunner(tmp_path).run(counting_steps(calls))
    assert calls == ["a", "b", "c"] and results["c"] == {"value": 3}
    assert status == {"a": "ran", "b": "ran", "c": "ran"}
    results, status = StepRunner(tmp_path).run(counting_steps(calls))
    assert calls == ["a", "b", "c"] and status == {"a": "resumed", "b": "resumed", "c": "resumed"}
    assert results["c"] == {"value": 3}


def test_restart_from_reruns_that_step_and_later(tmp_path: Path) -> None:
    calls: list[str] = []
    StepRunner(tmp_path).run(counting_steps(calls))
    _, status = StepRunner(tmp_path, restart_from="b").run(counting_steps(calls))
    assert calls == ["a", "b", "c", "b", "c"]
    assert status == {"a": "resumed", "b": "ran", "c": "ran"}


def test_crash_keeps_earlier_markers(tmp_path: Path) -> None:
    def boom(_results):
        raise RuntimeError("disk full")

    calls: list[str] = []
    steps = counting_steps(calls)
    with pytest.raises(RuntimeError, match="disk full"):
        StepRunner(tmp_path).run([steps[0], Step("b", boom), steps[2]])
    _, status = StepRunner(tmp_path).run(steps)
    assert status == {"a": "resumed", "b": "ran", "c": "ran"} and calls == ["a", "b", "c"]


def test_skipping_a_needed_step_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="restart_from=a"):
        StepRunner(tmp_path, skip=["a"]).run(counting_steps([]))


def test_unknown_step_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown step"):
        StepRunner(tmp_path, skip=["zz"]).run(counting_steps([]))

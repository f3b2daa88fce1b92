"""Prints which documented commands the docs test ran and how, whether or not pytest captures output."""

from __future__ import annotations

from collections import Counter


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    from tests.helpers import SUMMARY

    RESULTS = SUMMARY.get("documented commands", [])
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("documented commands")
    for result in RESULTS:
        status = "ok" if result["rc"] == 0 else f"FAILED rc={result['rc']}"
        write(f"{result['mode']:<8} {status:<14} {result['seconds']:>6.1f}s  {result['source']:<22} "
              f"{result['command'][:90]}")
    counts = Counter(result["mode"] for result in RESULTS)
    write(f"{len(RESULTS)} documented commands: " + ", ".join(f"{n} {mode}" for mode, n in sorted(counts.items())))

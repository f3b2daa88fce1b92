"""Transcribe the sliced segments into an editable GPT-SoVITS ``.list`` file.

The user brings audio without text, so an ASR model (:mod:`gpt_sovits_train.audio.asr`, chosen with
``clone/asr``) writes a first draft; because ASR mistakes become training targets, the draft goes to a plain
``path|speaker|language|text`` file the user can correct before re-running the workflow from the ``prepare`` step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ListEntry:
    """One line of a GPT-SoVITS ``.list`` file."""

    path: str
    speaker: str
    language: str
    text: str

    def line(self) -> str:
        clean = " ".join(self.text.replace("|", " ").split())
        return f"{self.path}|{self.speaker}|{self.language}|{clean}"


def write_list(path: Path, entries: Iterable[ListEntry]) -> None:
    """Write a ``.list`` file (UTF-8, one utterance a line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(entry.line() + "\n" for entry in entries), encoding="utf-8")


def read_list(path: Path) -> list[ListEntry]:
    """Read a ``.list`` file, skipping blank lines; a malformed line is an error naming its number."""
    entries = []
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.split("|", 3)
        if len(parts) != 4:
            raise ValueError(f"{path}:{number}: expected 'path|speaker|language|text', got {raw!r}")
        entries.append(ListEntry(*(p.strip() for p in parts)))
    return entries

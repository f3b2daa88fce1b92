"""Read a corpus description into utterances: GPT-SoVITS ``.list``, LJSpeech ``metadata.csv``, or a folder.

Problems that are visible before any audio is decoded (no transcript, audio file missing, malformed line,
a line that is not UTF-8, the same recording listed twice) come back as :class:`Skip` records naming the file
and line instead of exceptions, so one bad line never stops a corpus. A UTF-8 byte-order mark (Windows editors
write one) is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
TRANSCRIPT_SUFFIXES = (".txt", ".lab", ".normalized.txt")
# v1/v2 lists use upper- and lower-case codes; normalize to what phonemize() takes.
LANGUAGE_ALIASES = {"zh": "zh", "en": "en", "ja": "ja", "jp": "ja", "ko": "ko", "yue": "yue", "auto": "auto"}


@dataclass(frozen=True)
class Utterance:
    """One input item: where its audio is and what is said in it."""

    utterance_id: str
    audio_path: str
    speaker: str
    language: str
    text: str
    origin: str = ""  # where it was listed ("file:line"), for reports


@dataclass(frozen=True)
class Skip:
    """An input that was left out, and why (``reason`` is a short machine-readable code)."""

    source: str
    reason: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def normalize_language(code: str) -> str | None:
    return LANGUAGE_ALIASES.get(code.strip().lower())


BOM = b"\xef\xbb\xbf"


def read_lines(path: Path, skips: list[Skip]) -> Iterator[tuple[str, str]]:
    """``(where, line)`` for each non-empty UTF-8 line (``where`` is ``file:line``); a line in another encoding
    becomes an ``undecodable_text`` skip and the rest of the file is still read."""
    data = path.read_bytes()
    data = data[len(BOM) :] if data.startswith(BOM) else data
    for line_number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{path.name}:{line_number}"
        try:
            line = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as error:
            skips.append(Skip(where, "undecodable_text", _not_utf8(error, path.name)))
            continue
        if line.strip():
            yield where, line


def read_transcript(path: Path) -> str:
    """A transcript file's text (BOM ignored); raises ``UnicodeDecodeError`` when it is not UTF-8."""
    return path.read_bytes().decode("utf-8-sig").strip()


def _not_utf8(error: UnicodeDecodeError, name: str) -> str:
    return (
        f"{name}: byte 0x{error.object[error.start]:02x} at offset {error.start} is not UTF-8; "
        "re-save the file as UTF-8"
    )


def read_gpt_sovits_list(path: Path) -> tuple[list[Utterance], list[Skip]]:
    """``audio|speaker|language|text`` per line; relative audio paths are relative to the list's folder."""
    utterances: list[Utterance] = []
    skips: list[Skip] = []
    for where, line in read_lines(path, skips):
        parts = line.split("|", 3)
        if len(parts) < 4:
            skips.append(Skip(where, "malformed_line", f"expected audio|speaker|language|text, got {line!r}"))
            continue
        audio, speaker, language, text = (part.strip() for part in parts)
        resolved = normalize_language(language)
        if resolved is None:
            skips.append(Skip(audio or where, "unsupported_language", f"language code {language!r}"))
            continue
        audio_path = Path(audio) if Path(audio).is_absolute() else path.parent / audio
        utterance_id = Path(audio).with_suffix("").as_posix()
        utterances.append(Utterance(utterance_id, str(audio_path), speaker, resolved, text, where))
    return utterances, skips


def read_ljspeech(path: Path, speaker: str, language: str) -> tuple[list[Utterance], list[Skip]]:
    """``id|text[|normalized_text]`` per line with audio in ``wavs/<id>.wav`` next to the csv."""
    utterances: list[Utterance] = []
    skips: list[Skip] = []
    for where, line in read_lines(path, skips):
        parts = line.split("|")
        if len(parts) < 2:
            skips.append(Skip(where, "malformed_line", f"expected id|text, got {line!r}"))
            continue
        text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
        audio_path = path.parent / "wavs" / f"{parts[0].strip()}.wav"
        utterances.append(Utterance(parts[0].strip(), str(audio_path), speaker, language, text.strip(), where))
    return utterances, skips


def _transcript_for(audio_path: Path) -> Path | None:
    for suffix in TRANSCRIPT_SUFFIXES:
        candidate = audio_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_folder(
    root: Path, speaker: str | None, language: str, keep_untranscribed: bool = False
) -> tuple[list[Utterance], list[Skip]]:
    """Audio files with a same-named ``.txt``/``.lab`` beside them; speaker = first sub-folder, or ``speaker``.

    An audio file without one is a ``missing_transcript`` skip, or (``keep_untranscribed``, when prepare will
    slice and transcribe it) an utterance with empty text.
    """
    utterances, skips = [], []
    audio_files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    for audio_path in audio_files:
        relative = audio_path.relative_to(root)
        transcript = _transcript_for(audio_path)
        who = speaker or (relative.parts[0] if len(relative.parts) > 1 else root.name)
        if transcript is None:
            if keep_untranscribed:
                utterance_id = relative.with_suffix("").as_posix()
                utterances.append(Utterance(utterance_id, str(audio_path), who, language, "", str(relative)))
            else:
                skips.append(Skip(str(relative), "missing_transcript", "no .txt/.lab file next to the audio"))
            continue
        try:
            text = read_transcript(transcript)
        except UnicodeDecodeError as error:
            skips.append(Skip(str(relative), "undecodable_text", _not_utf8(error, transcript.name)))
            continue
        utterance_id = relative.with_suffix("").as_posix()
        utterances.append(Utterance(utterance_id, str(audio_path), who, language, text, str(relative)))
    return utterances, skips


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "ljspeech" if (path / "metadata.csv").is_file() else "folder"
    if path.suffix == ".csv":
        return "ljspeech"
    return "list"


def read_corpus(
    path: str | Path,
    format: str = "auto",
    speaker: str | None = None,
    language: str = "auto",
    keep_untranscribed: bool = False,
) -> tuple[list[Utterance], list[Skip]]:
    """Read any supported corpus description; ``format`` is ``auto``, ``list``, ``ljspeech`` or ``folder``.

    ``keep_untranscribed``: a folder's audio without a transcript file is kept with empty text (to be sliced
    and transcribed) instead of skipped; a ``.list`` line with empty text is kept either way.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist; point input.path at a .list, metadata.csv or folder")
    format = detect_format(path) if format == "auto" else format
    language = normalize_language(language) or language
    if format == "list":
        utterances, skips = read_gpt_sovits_list(path)
    elif format == "ljspeech":
        csv = path / "metadata.csv" if path.is_dir() else path
        utterances, skips = read_ljspeech(csv, speaker or csv.parent.name, language)
    elif format == "folder":
        utterances, skips = read_folder(path, speaker, language, keep_untranscribed)
    else:
        raise ValueError(f"unknown input format {format!r}; use auto, list, ljspeech or folder")
    unique, duplicates = deduplicate(utterances)
    return unique, skips + duplicates


def deduplicate(utterances: list[Utterance]) -> tuple[list[Utterance], list[Skip]]:
    """Keep the first listing of each recording (same file however it is spelled); every repeat is a
    ``duplicate_source`` skip. One recording twice would be trained on twice, or land in both splits."""
    first: dict[str, Utterance] = {}
    skips = []
    for utterance in utterances:
        source = os.path.realpath(utterance.audio_path)
        if source in first:
            kept = first[source]
            same = "same text" if kept.text == utterance.text else f"text {utterance.text[:60]!r}"
            skips.append(
                Skip(
                    utterance.audio_path,
                    "duplicate_source",
                    f"{utterance.origin} lists it again ({same}); kept {kept.origin}",
                )
            )
            continue
        first[source] = utterance
    return list(first.values()), skips


def count_by_reason(skips: Iterable[Skip | dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for skip in skips:
        reason = skip["reason"] if isinstance(skip, dict) else skip.reason
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

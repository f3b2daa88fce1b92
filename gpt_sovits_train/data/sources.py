"""Read a corpus description into utterances: GPT-SoVITS ``.list``, LJSpeech ``metadata.csv``, or a folder.

Problems that are visible before any audio is decoded (no transcript, audio file missing, malformed line)
come back as :class:`Skip` records instead of exceptions, so one bad line never stops a corpus.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def read_gpt_sovits_list(path: Path) -> tuple[list[Utterance], list[Skip]]:
    """``audio|speaker|language|text`` per line; relative audio paths are relative to the list's folder."""
    utterances, skips = [], []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{line_number}"
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
        utterances.append(Utterance(Path(audio).with_suffix("").as_posix(), str(audio_path), speaker, resolved, text))
    return utterances, skips


def read_ljspeech(path: Path, speaker: str, language: str) -> tuple[list[Utterance], list[Skip]]:
    """``id|text[|normalized_text]`` per line with audio in ``wavs/<id>.wav`` next to the csv."""
    utterances, skips = [], []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 2:
            skips.append(Skip(f"{path.name}:{line_number}", "malformed_line", f"expected id|text, got {line!r}"))
            continue
        text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
        audio_path = path.parent / "wavs" / f"{parts[0].strip()}.wav"
        utterances.append(Utterance(parts[0].strip(), str(audio_path), speaker, language, text.strip()))
    return utterances, skips


def _transcript_for(audio_path: Path) -> Path | None:
    for suffix in TRANSCRIPT_SUFFIXES:
        candidate = audio_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_folder(root: Path, speaker: str | None, language: str) -> tuple[list[Utterance], list[Skip]]:
    """Audio files with a same-named ``.txt``/``.lab`` beside them; speaker = first sub-folder, or ``speaker``."""
    utterances, skips = [], []
    audio_files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    for audio_path in audio_files:
        relative = audio_path.relative_to(root)
        transcript = _transcript_for(audio_path)
        if transcript is None:
            skips.append(Skip(str(relative), "missing_transcript", "no .txt/.lab file next to the audio"))
            continue
        who = speaker or (relative.parts[0] if len(relative.parts) > 1 else root.name)
        text = transcript.read_text(encoding="utf-8").strip()
        utterances.append(Utterance(relative.with_suffix("").as_posix(), str(audio_path), who, language, text))
    return utterances, skips


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "ljspeech" if (path / "metadata.csv").is_file() else "folder"
    if path.suffix == ".csv":
        return "ljspeech"
    return "list"


def read_corpus(
    path: str | Path, format: str = "auto", speaker: str | None = None, language: str = "auto"
) -> tuple[list[Utterance], list[Skip]]:
    """Read any supported corpus description; ``format`` is ``auto``, ``list``, ``ljspeech`` or ``folder``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist; point input.path at a .list, metadata.csv or folder")
    format = detect_format(path) if format == "auto" else format
    language = normalize_language(language) or language
    if format == "list":
        return read_gpt_sovits_list(path)
    if format == "ljspeech":
        csv = path / "metadata.csv" if path.is_dir() else path
        return read_ljspeech(csv, speaker or csv.parent.name, language)
    if format == "folder":
        return read_folder(path, speaker, language)
    raise ValueError(f"unknown input format {format!r}; use auto, list, ljspeech or folder")


def count_by_reason(skips: Iterable[Skip | dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for skip in skips:
        reason = skip["reason"] if isinstance(skip, dict) else skip.reason
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

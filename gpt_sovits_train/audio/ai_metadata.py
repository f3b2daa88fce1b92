"""Mark every audio file we synthesize as AI-generated, and read that mark back.

Cloned voices can be mistaken for real recordings, so every file written by the synthesizer carries the notice in
the container's own text fields, which ordinary players and tools show:

* WAV: RIFF ``LIST/INFO`` chunk: ``ICMT`` (comment), ``ISFT`` (software), ``INAM`` (title), ``IART`` (artist).
* FLAC / OGG Vorbis: Vorbis comments ``COMMENT``, ``ENCODER``/software, ``TITLE``, ``ARTIST``.
* MP3 (libsndfile >= 1.1 with an encoder): ID3 ``COMM``, ``TIT2``, ``TPE1``.

All are written through libsndfile (``soundfile``); no extra dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import gpt_sovits_train

AI_NOTICE = "AI-generated speech (synthetic voice, not a real recording)"
FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}


@dataclass(frozen=True)
class AIMetadata:
    """What the synthesizer stamps into a file; :meth:`as_fields` maps it onto soundfile's text fields."""

    model: str
    software: str = f"gpt_sovits_train {gpt_sovits_train.__version__}"
    title: str = "Synthesized speech"

    @property
    def comment(self) -> str:
        return f"{AI_NOTICE}; model: {self.model}"

    def as_fields(self) -> dict[str, str]:
        return {
            "comment": self.comment,
            "software": self.software,
            "title": self.title,
            "artist": f"AI voice ({self.model})",
        }


def write_audio_with_ai_metadata(
    path: str | Path, wav: np.ndarray | torch.Tensor, sample_rate: int, metadata: AIMetadata
) -> dict[str, str]:
    """Write mono 16-bit audio (format from the suffix) with the AI notice; returns the fields written."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported output format '{path.suffix}'; use one of {sorted(FORMATS)}")
    if fmt not in sf.available_formats():
        raise RuntimeError(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}; use .wav or .flac")
    array = torch.as_tensor(wav, dtype=torch.float32).detach().cpu().reshape(-1).numpy()
    array = np.clip(array, -1.0, 1.0)
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    fields = metadata.as_fields()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", samplerate=int(sample_rate), channels=1, format=fmt, subtype=subtype) as handle:
        for name, value in fields.items():
            if fmt == "MP3" and name == "software":
                continue  # ID3 via libsndfile has no software frame
            setattr(handle, name, value)
        handle.write(array)
    return fields


def read_ai_metadata(path: str | Path) -> dict[str, str]:
    """Return the text fields stored in an audio file (``comment``, ``software``, ``title``, ``artist`` …)."""
    with sf.SoundFile(str(path)) as handle:
        return dict(handle.copy_metadata())


def is_marked_ai_generated(path: str | Path) -> bool:
    """True when the file's comment carries our AI-generated notice."""
    return AI_NOTICE in read_ai_metadata(path).get("comment", "")

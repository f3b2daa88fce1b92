"""Audio decoding, channel mixing, resampling and encoding.

torchaudio >= 2.9 no longer reads or writes files, so every file goes through ``soundfile``
(libsndfile: wav, flac, ogg/vorbis, mp3 with libsndfile >= 1.1). Resampling stays in torchaudio
because its windowed-sinc kernel is the same on CPU and GPU and needs no extra dependency.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class AudioDecodeError(ValueError):
    """The bytes or file could not be decoded as audio (corrupt, truncated, unknown format)."""


@dataclass(frozen=True)
class DecodedAudio:
    """Samples as float32 ``[channels, samples]`` in [-1, 1] plus the rate they were recorded at."""

    samples: np.ndarray
    sample_rate: int

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / float(self.sample_rate)


def decode_audio(source: str | Path | bytes) -> DecodedAudio:
    """Decode a file path or in-memory bytes into float32 channels-first samples.

    Raises :class:`AudioDecodeError` with the reason instead of libsndfile's bare ``RuntimeError`` so that
    data preparation can report the file and carry on.
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        samples, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as error:
        name = "<bytes>" if isinstance(source, bytes) else str(source)
        raise AudioDecodeError(f"cannot decode audio {name}: {error}") from error
    return DecodedAudio(np.ascontiguousarray(samples.T), int(rate))


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels ``[C, N]`` into one ``[N]`` signal (a plain mean keeps the level of identical channels)."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=0).astype(np.float32, copy=False)


def resample(wav: np.ndarray | torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample a mono or batched signal with torchaudio's band-limited sinc interpolation."""
    tensor = torch.as_tensor(wav, dtype=torch.float32)
    if orig_rate == new_rate:
        return tensor
    return AF.resample(tensor, orig_freq=int(orig_rate), new_freq=int(new_rate))


def load_mono(source: str | Path | bytes, sample_rate: int) -> torch.Tensor:
    """Decode, mix to mono and resample to ``sample_rate`` in one call: float32 ``[samples]``."""
    decoded = decode_audio(source)
    return resample(to_mono(decoded.samples), decoded.sample_rate, sample_rate)


def encode_audio(wav: np.ndarray | torch.Tensor, sample_rate: int, format: str = "FLAC") -> bytes:
    """Encode a mono float signal as 16-bit PCM bytes (FLAC by default: lossless and about half the size of WAV)."""
    array = torch.as_tensor(wav, dtype=torch.float32).detach().cpu().numpy()
    array = np.clip(array, -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, array, int(sample_rate), subtype="PCM_16", format=format.upper())
    return buffer.getvalue()


def write_audio(
    path: str | Path,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a mono 16-bit file whose format follows the suffix, tagging it with ``metadata``.

    ``metadata`` keys are libsndfile string fields (``title``, ``comment``, ``software``, ``artist``,
    ``copyright``, ``date``...); synthesized speech should carry a ``comment`` saying it is AI-generated.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.clip(torch.as_tensor(wav, dtype=torch.float32).detach().cpu().numpy().reshape(-1), -1.0, 1.0)
    with sf.SoundFile(path, "w", samplerate=int(sample_rate), channels=1, subtype="PCM_16") as handle:
        for field, value in (metadata or {}).items():
            if field not in sf._str_types:
                raise ValueError(f"unknown audio metadata field {field!r}; use one of {sorted(sf._str_types)}")
            setattr(handle, field, str(value))
        handle.write(array)
    return path

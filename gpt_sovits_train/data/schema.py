"""The one shard sample schema: field names, tar member names, dtypes, shapes, encode/decode.

Writer (``data/prepare.py``), reader (``data/datamodule.py``) and tests all go through this module, so a
field can only change in one place. Tensors are stored as ``.npy`` (exact dtype and shape, no pickle),
audio as 16-bit FLAC at 32 kHz, metadata as JSON. WebDataset splits a member name at the first dot of its
basename, so sample keys must not contain dots (see :func:`safe_key`).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gpt_sovits_train.audio.io import decode_audio, encode_audio, to_mono
from gpt_sovits_train.constants import BERT_DIM, SAMPLE_RATE, SSL_DIM

SCHEMA_VERSION = 1
SPEAKER_DIM = 192
META_FIELDS = ("speaker", "language", "text", "norm_text", "phones", "duration", "sample_rate")


@dataclass(frozen=True)
class TensorField:
    """A tensor field: its tar extension, the dtypes it may be stored as, and its expected shape.

    ``shape`` uses ``None`` for free sizes and ``"P"`` for the phoneme count (checked against ``phone_ids``).
    """

    name: str
    extension: str
    dtypes: tuple[torch.dtype, ...]
    shape: tuple[int | str | None, ...]
    required: bool


TENSOR_FIELDS: dict[str, TensorField] = {
    field.name: field
    for field in (
        TensorField("phone_ids", "phone_ids.npy", (torch.int64,), ("P",), True),
        TensorField("word2ph", "word2ph.npy", (torch.int64,), (None,), False),
        TensorField("bert", "bert.npy", (torch.float16, torch.float32), (BERT_DIM, "P"), False),
        TensorField("ssl", "ssl.npy", (torch.float16, torch.float32), (SSL_DIM, None), True),
        TensorField("semantic", "semantic.npy", (torch.int64,), (None,), False),
        TensorField("speaker_embedding", "speaker_embedding.npy", (torch.float32,), (SPEAKER_DIM,), False),
        TensorField("encodec", "encodec.npy", (torch.int64,), (None, None), False),
    )
}
AUDIO_EXTENSION = "audio.flac"
META_EXTENSION = "meta.json"


class SchemaError(ValueError):
    """A sample does not follow the shard schema (missing field, wrong dtype or shape)."""


class CorruptSampleError(SchemaError):
    """A sample inside a shard cannot be decoded (damaged bytes); the message names the shard and the key."""


def safe_key(raw: str) -> str:
    """Turn an utterance id or path into a WebDataset-safe key: no dots, slashes or spaces."""
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", raw).strip("_")
    if not key:
        raise SchemaError(f"utterance id {raw!r} has no usable characters for a sample key")
    return key


def _npy_bytes(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, tensor.detach().cpu().numpy(), allow_pickle=False)
    return buffer.getvalue()


def _npy_tensor(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))


def validate_sample(sample: dict[str, Any], with_audio: bool = True) -> None:
    """Raise :class:`SchemaError` naming the first field that breaks the schema (the waveform only when
    ``with_audio``: a reader that does not decode it checks the rest)."""
    for required in ("key", "audio", "meta") if with_audio else ("key", "meta"):
        if required not in sample:
            raise SchemaError(f"sample is missing required field {required!r}")
    if "." in sample["key"]:
        raise SchemaError(f"sample key {sample['key']!r} contains a dot; build keys with safe_key()")
    audio = sample.get("audio")
    if with_audio and (not isinstance(audio, torch.Tensor) or audio.dim() != 1 or audio.dtype != torch.float32):
        raise SchemaError("audio must be a float32 tensor [samples]")
    missing_meta = [name for name in META_FIELDS if name not in sample["meta"]]
    if missing_meta:
        raise SchemaError(f"meta is missing {missing_meta}")
    phone_count = None
    for field in TENSOR_FIELDS.values():
        value = sample.get(field.name)
        if value is None:
            if field.required:
                raise SchemaError(f"sample {sample['key']} is missing required field {field.name!r}")
            continue
        if not isinstance(value, torch.Tensor) or value.dtype not in field.dtypes:
            found = getattr(value, "dtype", type(value))
            raise SchemaError(f"{field.name} must be a tensor of dtype {field.dtypes}, got {found}")
        if value.dim() != len(field.shape):
            raise SchemaError(f"{field.name} must have {len(field.shape)} dims, got shape {tuple(value.shape)}")
        for size, expected in zip(value.shape, field.shape):
            if expected == "P":
                phone_count = phone_count if phone_count is not None else int(sample["phone_ids"].numel())
                expected = phone_count
            if expected is not None and size != expected:
                shape = tuple(value.shape)
                raise SchemaError(f"{field.name} has shape {shape}, expected {field.shape} (P={phone_count})")
    word2ph = sample.get("word2ph")
    if word2ph is not None and int(word2ph.sum()) != int(sample["phone_ids"].numel()):
        raise SchemaError(f"word2ph sums to {int(word2ph.sum())} but there are {sample['phone_ids'].numel()} phones")


def encode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Schema sample → WebDataset dict (``__key__`` plus one bytes value per tar member)."""
    validate_sample(sample)
    encoded: dict[str, Any] = {
        "__key__": sample["key"],
        AUDIO_EXTENSION: encode_audio(sample["audio"], SAMPLE_RATE),
        META_EXTENSION: json.dumps(sample["meta"], ensure_ascii=False).encode("utf-8"),
    }
    for field in TENSOR_FIELDS.values():
        if sample.get(field.name) is not None:
            encoded[field.extension] = _npy_bytes(sample[field.name])
    return encoded


def decode_sample(raw: dict[str, Any], with_audio: bool = True) -> dict[str, Any]:
    """WebDataset raw dict (bytes per member) → schema sample with tensors; validates the result.

    ``with_audio=False`` leaves the FLAC member undecoded (the sample has no ``audio``): the GPT stage reads only
    phonemes, BERT features and tokens, and decoding the waveform was most of its loader's work.

    A sample that cannot be decoded (damaged FLAC, truncated ``.npy``, broken JSON, wrong shapes) raises
    :class:`CorruptSampleError` naming the shard (webdataset's ``__url__``) and the key, so a training run that
    meets one says which file to rewrite instead of only "flac decoder lost sync".
    """
    try:
        return _decode_sample(raw, with_audio)
    except (ValueError, OSError, EOFError) as error:  # AudioDecodeError, SchemaError, JSON and npy errors
        shard = raw.get("__url__", "an unnamed shard")
        raise CorruptSampleError(
            f"sample {raw.get('__key__')!r} in shard {shard} cannot be decoded ({type(error).__name__}: {error}); "
            "the shard is damaged: re-run gst-prepare with overwrite=true to rewrite the dataset, or restore "
            "that shard from a good copy"
        ) from error


def _decode_sample(raw: dict[str, Any], with_audio: bool) -> dict[str, Any]:
    if AUDIO_EXTENSION not in raw:
        raise SchemaError(f"shard sample {raw.get('__key__')} has no {AUDIO_EXTENSION} member")
    sample: dict[str, Any] = {"key": raw["__key__"], "meta": json.loads(raw[META_EXTENSION].decode("utf-8"))}
    if with_audio:
        decoded_audio = decode_audio(raw[AUDIO_EXTENSION])
        if decoded_audio.sample_rate != SAMPLE_RATE:
            raise SchemaError(f"shard audio must be {SAMPLE_RATE} Hz, got {decoded_audio.sample_rate}")
        sample["audio"] = torch.from_numpy(to_mono(decoded_audio.samples).copy())
    for field in TENSOR_FIELDS.values():
        if field.extension in raw:
            sample[field.name] = _npy_tensor(raw[field.extension])
    validate_sample(sample, with_audio)
    return sample

"""Resolve a model reference (local folder or Hugging Face hub id) to a local folder, never downloading.

Extractors accept either form so configs can name ``TencentGameMate/chinese-hubert-base`` on a machine with
a populated cache and a plain path elsewhere. Downloading is left to the user (``hf download <id>``: the CLI
that huggingface_hub installs) because data preparation must be reproducible offline.
"""

from __future__ import annotations

from pathlib import Path

import torch


def resolve_model_dir(reference: str | Path) -> Path:
    """Return a local folder for ``reference``; raise ``FileNotFoundError`` saying how to get it otherwise."""
    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(reference), local_files_only=True))
    except Exception as error:  # huggingface_hub raises several unrelated types for "not cached"
        raise FileNotFoundError(
            f"model {reference!r} is neither a local folder nor in the Hugging Face cache; download it first "
            f"(`hf download {reference}`) or point the config at a local folder"
        ) from error


def pick_device(device: str | None) -> torch.device:
    """``None``/``"auto"`` means the GPU when there is one: feature extraction is the slow part of prepare."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

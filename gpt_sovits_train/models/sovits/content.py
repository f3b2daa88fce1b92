"""Content inputs of the generator: which tensor carries "what is said" (SSL features or EnCodec codes).

In `ssl` mode (v2) the content is HuBERT features [B, 768, T50] that the generator projects and quantizes into
semantic codes. In `encodec` mode the data side already supplies EnCodec codebook-0 codes brought to 25 Hz, so
the generator only needs an embedding table; this module validates those codes and puts them in one layout.
"""

from __future__ import annotations

import torch
from torch import Tensor

CONTENT_SOURCES = ("ssl", "encodec")


def check_content_source(content_source: str) -> str:
    if content_source not in CONTENT_SOURCES:
        raise ValueError(f"content_source must be one of {CONTENT_SOURCES}, got {content_source!r}")
    return content_source


def codec_codes(content: Tensor, codebook_size: int) -> Tensor:
    """EnCodec content codes [B, T] or [B, 1, T] (integer, in [0, codebook_size)) -> LongTensor [B, T].

    Float input is refused rather than cast: it almost always means SSL features were passed to an
    encodec-mode generator (or the other way round), which would otherwise fail much later or silently.
    """
    if content.is_floating_point() or content.is_complex() or content.dtype == torch.bool:
        raise ValueError(
            f"content_source='encodec' expects integer EnCodec codes [B, T25] or [B, 1, T25], got {content.dtype} "
            f"of shape {tuple(content.shape)} (SSL features go to a content_source='ssl' generator)"
        )
    if content.dim() == 3 and content.shape[1] == 1:
        content = content[:, 0]
    if content.dim() != 2:
        raise ValueError(f"EnCodec codes must be [B, T25] or [B, 1, T25], got shape {tuple(content.shape)}")
    if content.numel() and (int(content.min()) < 0 or int(content.max()) >= codebook_size):
        raise ValueError(
            f"EnCodec codes must lie in [0, {codebook_size}) (codec_codebook_size), got range "
            f"[{int(content.min())}, {int(content.max())}]"
        )
    return content.long()

"""Errors and warnings of the text frontend, in one place so callers can filter or catch them by type."""

from __future__ import annotations

import warnings


class UnsupportedTextError(ValueError):
    """The text (or the requested language) cannot be turned into v2 phones; the message names the span."""


class DroppedTextWarning(UserWarning):
    """Characters that cannot be pronounced were removed from the text (emoji, stray symbols)."""


class UnknownPhoneWarning(UserWarning):
    """A G2P produced a phone that is not in the v2 table; it was replaced by UNK."""


def warn_dropped(characters: list[str], language: str) -> None:
    """One warning naming every distinct character a normalizer had to drop."""
    if characters:
        warnings.warn(
            f"dropped characters the {language} frontend cannot pronounce: {''.join(dict.fromkeys(characters))!r}; "
            "spell them out in words if they should be read",
            DroppedTextWarning,
            stacklevel=4,
        )

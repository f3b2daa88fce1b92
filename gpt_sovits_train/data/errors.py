"""The mistakes ``gst-prepare`` reports as one line with exit status 2 (no traceback)."""

from __future__ import annotations


class PrepareError(RuntimeError):
    """A mistake in the inputs, the configuration or the output folder: ``gst-prepare`` prints the message as one
    line and exits with status 2."""


class DatasetExistsError(PrepareError):
    """The output folder already holds a finished (or differently configured) dataset."""


class NoValidSamplesError(PrepareError):
    """Every input was skipped; the message counts the reasons."""


class OutputInUseError(PrepareError):
    """Another ``gst-prepare`` process holds the output folder's lock."""

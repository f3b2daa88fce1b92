"""Audio decoding, processing and spectrograms."""

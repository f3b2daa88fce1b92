"""Features layer (bottom): SSL, BERT, speaker and codec extractors; imports data/features/text/audio and ``constants``
only."""

"""Audio layer (bottom): decode/encode, resample, DSP, spectrograms, AI-metadata tags; imports only ``constants``."""

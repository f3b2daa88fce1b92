"""Interchange layer: every file format and checkpoint read/write (safe loader, v2 files, ONNX, Hub, redaction); sits
right above models so lit and training read checkpoints through it; imports models and the bottom layers only."""

"""Inference runtimes: CPU feature detection, the ONNX Runtime GPT backend, the quality gate and runtime choice."""

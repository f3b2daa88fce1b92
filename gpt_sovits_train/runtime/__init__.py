"""CPU/GPU kernels and engines that speed up inference behind one entry point each (CPU feature detection,
oneDNN packing, the ONNX Runtime GPT backend, the quality gate and the runtime choice); may import models and below."""

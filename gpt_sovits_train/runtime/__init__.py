"""Runtime layer: kernels and engines that speed up inference behind one entry point each (CPU feature detection,
oneDNN packing, the ONNX Runtime GPT backend, the quality gate, the runtime choice), offered to it as providers; sits
beside inference (they may import each other, never in a cycle) and imports interchange, models and the layers below."""

"""CPU/GPU kernels and engines that speed up inference behind one entry point each; may import models and below."""

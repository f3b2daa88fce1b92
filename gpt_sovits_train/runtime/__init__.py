"""Runtime layer: kernels and engines that speed up inference, offered to it as providers; sits beside inference
(they may import each other, never in a cycle) and imports interchange, models and the bottom layers."""

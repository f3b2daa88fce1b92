"""Callbacks layer: Lightning callbacks (throughput, memory, NaN guard, audio logging, preemption); imports lit,
interchange, models and the bottom layers — never training or inference."""

"""Clone layer: one-minute voice cloning (slice, transcribe, fine-tune both stages, write a voice bundle); imports
every layer below it, never cli or benchmarks."""

"""One-minute voice cloning: slice a raw recording, transcribe it, fine-tune both stages, write a voice bundle."""

"""models/gpt."""

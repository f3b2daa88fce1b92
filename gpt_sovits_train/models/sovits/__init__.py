"""models/sovits."""

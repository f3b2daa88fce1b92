"""CLI layer (top): thin Hydra mains that compose a config and call one function; may import every layer."""

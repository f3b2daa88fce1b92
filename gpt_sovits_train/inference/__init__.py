"""Inference layer: synthesis (Synthesizer, streaming, evaluation, the config factory); imports runtime, training and
everything below it — never clone or cli."""

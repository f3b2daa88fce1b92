"""SoVITS stage networks (generator, discriminators, losses) under v2 state-dict names; part of the models layer."""

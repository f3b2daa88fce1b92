"""Models layer: the networks and their math (GPT, SoVITS) — nothing about Lightning, files or runtimes; imports only
the bottom layers (data/features/text/audio, ``constants``)."""

"""Lit layer: LightningModules (training/validation logic only); imports models, interchange (checkpoint reading) and
the bottom layers."""

"""gpt_sovits_train: a PyTorch Lightning + Hydra trainer for GPT-SoVITS-style few-shot voice cloning."""

__version__ = "0.1.0"

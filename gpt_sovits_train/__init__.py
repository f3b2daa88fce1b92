"""gpt_sovits_train: a PyTorch Lightning + Hydra trainer for GPT-SoVITS-style few-shot voice cloning."""

import warnings

__version__ = "0.1.0"

# jieba (Chinese word segmentation) imports setuptools' deprecated pkg_resources, which warns on every run of every
# CLI that touches Chinese text; the warning is about jieba's packaging, nothing a user can act on. Only that one
# warning from jieba is silenced.
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning, module=r"jieba(\.|$)")

"""Neural spelling -> ARPAbet prediction for English words missing from the CMU dictionary.

Uses the GRU encoder-decoder weights that the ``g2p_en`` package ships (``checkpoint20.npz``), evaluated here with
numpy.  ``g2p_en`` itself is not imported: importing it tries to download NLTK corpora, which fails offline.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
PHONEMES = ["<pad>", "<unk>", "<s>", "</s>", "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0",
            "AO1", "AO2", "AW0", "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0",
            "ER1", "ER2", "EY0", "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L",
            "M", "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1",
            "UH2", "UW", "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH"]
_START, _END = PHONEMES.index("<s>"), PHONEMES.index("</s>")
MAX_PHONES = 20


def checkpoint_path() -> Path:
    """Where the installed ``g2p_en`` package keeps its weights (found without importing the package)."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("g2p_en is not installed; `pip install g2p_en` to get the English OOV model weights")
    return Path(next(iter(spec.submodule_search_locations))) / "checkpoint20.npz"


@cache
def _weights() -> dict[str, np.ndarray]:
    with np.load(checkpoint_path()) as archive:
        return {name: archive[name].astype(np.float32) for name in archive.files}


def _gru_step(x: np.ndarray, h: np.ndarray, prefix: str) -> np.ndarray:
    """One GRU cell step (PyTorch gate layout: reset, update, new)."""
    w = _weights()
    gates_x = x @ w[f"{prefix}_w_ih"].T + w[f"{prefix}_b_ih"]
    gates_h = h @ w[f"{prefix}_w_hh"].T + w[f"{prefix}_b_hh"]
    size = h.shape[-1]
    reset = 1.0 / (1.0 + np.exp(-(gates_x[:size] + gates_h[:size])))
    update = 1.0 / (1.0 + np.exp(-(gates_x[size:2 * size] + gates_h[size:2 * size])))
    candidate = np.tanh(gates_x[2 * size:] + reset * gates_h[2 * size:])
    return (1.0 - update) * candidate + update * h


@cache
def predict_phones(word: str) -> tuple[str, ...]:
    """Greedy-decode the ARPAbet phones of a lowercase word (letters outside a-z count as unknown)."""
    w = _weights()
    hidden = np.zeros(w["enc_w_hh"].shape[1], dtype=np.float32)
    for char in [*word.lower(), "</s>"]:
        index = GRAPHEMES.index(char) if char in GRAPHEMES else GRAPHEMES.index("<unk>")
        hidden = _gru_step(w["enc_emb"][index], hidden, "enc")
    previous = _START
    phones: list[str] = []
    for _ in range(MAX_PHONES):
        hidden = _gru_step(w["dec_emb"][previous], hidden, "dec")
        previous = int(np.argmax(w["fc_w"] @ hidden + w["fc_b"]))
        if previous == _END:
            break
        phones.append(PHONEMES[previous])
    return tuple(phones)

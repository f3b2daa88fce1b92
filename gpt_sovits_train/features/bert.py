"""Chinese BERT features at phoneme rate, as v2 computes them for Chinese text.

v2 runs chinese-roberta-wwm-ext-large (hidden 1024) over the normalized text, takes the third-to-last
hidden layer, drops [CLS]/[SEP], and repeats each character's vector ``word2ph[i]`` times, giving
``[1024, P]``. Non-Chinese text gets zeros of the same shape (v2 does this for English and Japanese).
For a mixed utterance the Chinese runs get BERT vectors and the other runs zeros.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from gpt_sovits_train.constants import BERT_DIM
from gpt_sovits_train.features.hub import pick_device, resolve_model_dir

BERT_LAYER_FROM_END = 3  # hidden_states[-3]: the layer v2 uses


class ChineseBertExtractor:
    """``__call__(text, word2ph) -> float32 [hidden, sum(word2ph)]`` for Chinese text of ``len(word2ph)`` chars."""

    version = "bert-hidden[-3]-per-char-v1"

    def __init__(self, model: str | Path, device: str | None = "auto") -> None:
        folder = resolve_model_dir(model)
        self.name = str(model)
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForMaskedLM.from_pretrained(folder).to(self.device).eval()

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def __call__(self, text: str, word2ph: list[int]) -> torch.Tensor:
        if len(text) != len(word2ph):
            raise ValueError(
                f"Chinese BERT needs one word2ph entry per character: {len(text)} chars, {len(word2ph)} entries"
            )
        inputs = self.tokenizer(list(text), is_split_into_words=True, return_tensors="pt").to(self.device)
        if inputs["input_ids"].shape[1] != len(text) + 2:
            raise ValueError(f"tokenizer did not give one token per character for {text!r}")
        outputs = self.model(**inputs, output_hidden_states=True)
        per_char = outputs.hidden_states[-BERT_LAYER_FROM_END][0, 1:-1].float().cpu()  # [chars, hidden]
        repeats = torch.as_tensor(word2ph, dtype=torch.long)
        return per_char.repeat_interleave(repeats, dim=0).transpose(0, 1).contiguous()


def zeros_bert(phone_count: int, hidden_size: int = BERT_DIM) -> torch.Tensor:
    """What v2 uses for non-Chinese text: all zeros at phoneme rate."""
    return torch.zeros(hidden_size, phone_count)

"""GPT stage: the text-to-semantic network (one layer definition), its sampling rules, decode loop and KV cache."""

from gpt_sovits_train.models.gpt.decoding import DecodeOutput
from gpt_sovits_train.models.gpt.kv_cache import KVDecoder
from gpt_sovits_train.models.gpt.model import GPTConfig, Text2SemanticModel, load_v2_state_dict
from gpt_sovits_train.models.gpt.sampling import SamplingOptions

__all__ = [
    "DecodeOutput",
    "GPTConfig",
    "KVDecoder",
    "SamplingOptions",
    "Text2SemanticModel",
    "load_v2_state_dict",
]

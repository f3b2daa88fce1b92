"""GPT stage: the text-to-semantic transformer (v2 state-dict names) and its KV-cache sampler."""

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

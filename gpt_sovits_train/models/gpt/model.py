"""Text-to-semantic decoder (GPT stage) with GPT-SoVITS v2 state-dict names.

The network is one stack of post-norm transformer layers over ``[phonemes ; semantic tokens]``: phonemes attend
to all phonemes, semantic tokens attend to all phonemes plus earlier semantic tokens. Parameter names follow the
reference ``Text2SemanticDecoder`` (``h.layers.N.self_attn.in_proj_weight`` ...) so official v2 weights load
strictly, but the layer is written once (:func:`decoder_layer`, attention through ``scaled_dot_product_attention``) and
serves teacher-forced training, KV-cache decoding (``kv_cache.py``) and the ONNX export (``interchange/onnx.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits_train.constants import BERT_DIM


@dataclass(frozen=True)
class GPTConfig:
    """Network sizes. v2: 732 phonemes, 1025 semantic ids (1024 codes + EOS), 512-d, 24 layers, 16 heads."""

    phoneme_vocab_size: int = 732
    vocab_size: int = 1025
    embedding_dim: int = 512
    hidden_dim: int = 512
    num_heads: int = 16
    num_layers: int = 24
    ffn_dim: int = 2048
    dropout: float = 0.0
    max_positions: int = 4096

    @property
    def eos(self) -> int:
        return self.vocab_size - 1


class TokenEmbedding(nn.Module):
    """Embedding table kept under ``word_embeddings`` to match v2 key names."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


def sine_table(length: int, dim: int) -> torch.Tensor:
    """v2's positional table ``[length, dim]``: even channels sin, odd cos, frequencies ``exp(-ln(10000)·2i/dim)``."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


class ScaledSinePosition(nn.Module):
    """``x + alpha * PE``: a learned scalar scales a fixed sinusoidal table (:func:`sine_table`).

    The table is a non-persistent buffer (v2 checkpoints hold only ``alpha``), computed once up to
    ``max_positions`` so decoding never rebuilds it.
    """

    def __init__(self, dim: int, max_positions: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.register_buffer("table", sine_table(max_positions, dim), persistent=False)

    def forward(self, x: torch.Tensor, offset: int | torch.Tensor = 0) -> torch.Tensor:
        length = x.shape[1]
        if isinstance(offset, int):
            if offset + length > self.table.shape[0]:
                raise ValueError(
                    f"sequence of {offset + length} positions exceeds max_positions={self.table.shape[0]}; "
                    "raise net.max_positions"
                )
            pe = self.table[offset : offset + length]
        else:  # per-row offsets [B] (batched decoding with different prompt lengths)
            pe = self.table[offset.view(-1, 1) + torch.arange(length, device=x.device)]
        return x + self.alpha * pe.to(x.dtype)

    def at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One position per row: ``x`` ``[B,D]`` at ``positions`` ``[B]`` (the per-token decode step)."""
        return x + self.alpha * self.table[positions].to(x.dtype)


Linear = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
#: ``attend(qkv) -> attended``: the fused projection ``[..., 3D]`` in, the heads' output ``[..., D]`` out (before
#: ``out_proj``). Training, the KV cache and the exported graphs differ only here: how keys/values are kept.
Attend = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LayerWeights:
    """One layer's tensors (v2 names in the comments), fetched once so a decode loop does no module lookups."""

    in_weight: torch.Tensor  # self_attn.in_proj_weight
    in_bias: torch.Tensor
    out_weight: torch.Tensor  # self_attn.out_proj
    out_bias: torch.Tensor
    ffn_in_weight: torch.Tensor  # linear1
    ffn_in_bias: torch.Tensor
    ffn_out_weight: torch.Tensor  # linear2
    ffn_out_bias: torch.Tensor
    norm1_weight: torch.Tensor
    norm1_bias: torch.Tensor
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    eps: float
    dim: int  # a Python int, so layer_norm's shape stays a constant when the layer is traced for export

    def map_matrices(
        self, weight_fn: Callable[[torch.Tensor], torch.Tensor], bias_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> LayerWeights:
        """A copy with ``weight_fn`` applied to the linear weights and ``bias_fn`` to their biases (layer norms
        stay: they run on the residual stream)."""
        weights = ("in_weight", "out_weight", "ffn_in_weight", "ffn_out_weight")
        biases = ("in_bias", "out_bias", "ffn_in_bias", "ffn_out_bias")
        changed = {name: weight_fn(getattr(self, name)) for name in weights}
        changed.update({name: bias_fn(getattr(self, name)) for name in biases})
        return replace(self, **changed)


def decoder_layer(
    x: torch.Tensor, w: LayerWeights, attend: Attend, linear: Linear = F.linear, dropout: float = 0.0
) -> torch.Tensor:
    """The GPT layer, written once: ``x = LN(x + Attn(x)); x = LN(x + FFN(x))`` with ReLU (v2 ``norm_first=False``).

    ``x`` is ``[B,T,D]`` (training, prefill, export) or ``[B,D]`` (one decode step); ``attend`` owns the keys and
    values, ``linear`` may read packed or lower-precision matrix copies (see ``runtime/cpu_packing.py``).
    """
    training = dropout > 0.0
    attended = linear(attend(linear(x, w.in_weight, w.in_bias)), w.out_weight, w.out_bias)
    x = F.layer_norm(x + F.dropout(attended, dropout, training), (w.dim,), w.norm1_weight, w.norm1_bias, w.eps)
    hidden = F.dropout(F.relu(linear(x, w.ffn_in_weight, w.ffn_in_bias)), dropout, training)
    ffn = F.dropout(linear(hidden, w.ffn_out_weight, w.ffn_out_bias), dropout, training)
    return F.layer_norm(x + ffn, (w.dim,), w.norm2_weight, w.norm2_bias, w.eps)


#: ``keep(layer_index, k, v) -> (k, v)``: sees each layer's keys/values ``[B,H,T,D/H]`` (to cache them) and
#: returns the ones to attend over.
KeepKV = Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def attend_sequence(
    qkv: torch.Tensor, heads: int, mask: torch.Tensor | None, dropout: float = 0.0, keep=None
) -> torch.Tensor:
    """Multi-head SDPA over a whole sequence: ``qkv`` ``[B,T,3D]`` → ``[B,T,D]``; ``keep(k, v)`` may store or
    extend the keys/values first."""
    b, t, _ = qkv.shape
    q, k, v = qkv.view(b, t, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    if keep is not None:
        k, v = keep(k, v)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    return out.transpose(1, 2).reshape(b, t, -1)


class FusedSelfAttention(nn.Module):
    """The fused ``in_proj`` and ``out_proj`` under v2's names; the attention itself is :func:`attend_sequence`."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_dim {dim} must be divisible by num_heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)


class DecoderLayer(nn.Module):
    """Parameters of one layer under v2's names (``h.layers.N.*``); the math is :func:`decoder_layer`."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = FusedSelfAttention(dim, heads)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = dropout

    def weights(self) -> LayerWeights:
        attention = self.self_attn
        return LayerWeights(
            attention.in_proj_weight,
            attention.in_proj_bias,
            attention.out_proj.weight,
            attention.out_proj.bias,
            self.linear1.weight,
            self.linear1.bias,
            self.linear2.weight,
            self.linear2.bias,
            self.norm1.weight,
            self.norm1.bias,
            self.norm2.weight,
            self.norm2.bias,
            self.norm1.eps,
            int(self.norm1.normalized_shape[0]),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, keep=None) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        heads = self.self_attn.heads
        return decoder_layer(x, self.weights(), lambda qkv: attend_sequence(qkv, heads, mask, p, keep), dropout=p)


class DecoderStack(nn.Module):
    """Holds ``layers`` so keys read ``h.layers.N.*`` as in v2."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.hidden_dim, cfg.num_heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.num_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, keep: KeepKV | None = None) -> torch.Tensor:
        """Run every layer; ``keep`` (see :data:`KeepKV`) lets a KV cache or an export graph hold the keys."""
        for index, layer in enumerate(self.layers):
            x = layer(x, mask, None if keep is None else partial(keep, index))
        return x


def right_pad_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """True where a right-padded row is padding: ``[B, width]``."""
    return torch.arange(width, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


def left_pad_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """True for the first ``width - len`` positions (v2's ``make_pad_mask_left``; wrong for right-padded data)."""
    return torch.arange(width, device=lengths.device).unsqueeze(0) < (width - lengths).unsqueeze(1)


def joint_attention_mask(text_padding: torch.Tensor, semantic_padding: torch.Tensor) -> torch.Tensor:
    """Boolean SDPA mask ``[B,1,P+S,P+S]`` (True = may attend).

    Text rows see all non-padded text; semantic rows see non-padded text and non-padded earlier semantic tokens.
    Built from comparisons only (no in-place writes), so it traces into an export graph with dynamic P and S.
    """
    keys_valid = ~torch.cat([text_padding, semantic_padding], dim=1)
    p = text_padding.shape[1]
    index = torch.arange(keys_valid.shape[1], device=keys_valid.device)
    structure = (index.unsqueeze(0) < p) | (index.unsqueeze(0) <= index.unsqueeze(1))
    return (structure.unsqueeze(0) & keys_valid.unsqueeze(1)).unsqueeze(1)


class Text2SemanticModel(nn.Module):
    """The GPT stage. ``state_dict()`` keys and shapes equal v2's ``Text2SemanticDecoder`` (without ``model.``)."""

    def __init__(self, cfg: GPTConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = cfg or GPTConfig(**overrides)
        if cfg.embedding_dim != cfg.hidden_dim:
            raise ValueError("embedding_dim must equal hidden_dim (v2 adds embeddings straight into the stack)")
        self.cfg = cfg
        self.bert_proj = nn.Linear(BERT_DIM, cfg.embedding_dim)
        self.ar_text_embedding = TokenEmbedding(cfg.phoneme_vocab_size, cfg.embedding_dim)
        self.ar_text_position = ScaledSinePosition(cfg.embedding_dim, cfg.max_positions)
        self.ar_audio_embedding = TokenEmbedding(cfg.vocab_size, cfg.embedding_dim)
        self.ar_audio_position = ScaledSinePosition(cfg.embedding_dim, cfg.max_positions)
        self.h = DecoderStack(cfg)
        self.ar_predict_layer = nn.Linear(cfg.hidden_dim, cfg.vocab_size, bias=False)

    @property
    def eos(self) -> int:
        return self.cfg.eos

    def embed_text(self, phoneme_ids: torch.Tensor, bert_feature: torch.Tensor) -> torch.Tensor:
        """Phoneme embedding + projected BERT ``[B,1024,P]`` + scaled positions → ``[B,P,D]``."""
        if bert_feature.shape[1] != BERT_DIM or bert_feature.shape[-1] != phoneme_ids.shape[1]:
            raise ValueError(
                f"bert_feature must be [B, {BERT_DIM}, P], P={phoneme_ids.shape[1]}; got {tuple(bert_feature.shape)}"
            )
        x = self.ar_text_embedding(phoneme_ids) + self.bert_proj(
            bert_feature.transpose(1, 2).to(self.bert_proj.weight.dtype)
        )
        return self.ar_text_position(x)

    def embed_semantic(self, semantic_ids: torch.Tensor, offset: int | torch.Tensor = 0) -> torch.Tensor:
        return self.ar_audio_position(self.ar_audio_embedding(semantic_ids), offset)

    def teacher_forced(
        self,
        phoneme_ids: torch.Tensor,
        phoneme_lens: torch.Tensor,
        semantic_ids: torch.Tensor,
        semantic_lens: torch.Tensor,
        bert_feature: torch.Tensor,
        compat_v2: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B,S+1,V]`` and targets ``[B,S+1]`` for right-padded batches (the docs/design.md GPT batch).

        Position 0 predicts the first semantic token from the last phoneme, position *i* predicts token *i*, the
        last valid position of each row predicts EOS.

        * default: each row's first prediction comes from its own last real phoneme, padding is masked out of
          attention as right padding, and targets past each row's EOS are ``-100`` (ignored by the loss).
        * ``compat_v2=True`` reproduces the reference exactly: the phoneme padding mask is built as *left* padding
          (wrong for right-padded data), the first prediction is read at column ``max(P)-1`` for every row, and
          padded targets are EOS (so they count in the summed loss).
        """
        b, p = phoneme_ids.shape
        s = semantic_ids.shape[1]
        semantic_padding = right_pad_mask(semantic_lens, s)
        codes = semantic_ids.masked_fill(semantic_padding, 0)
        # Inputs are the tokens with padding replaced by EOS (as collated); targets append EOS after each row.
        eos_targets = F.pad(codes, (0, 1), value=0) + self.eos * F.pad(semantic_padding.long(), (0, 1), value=1)
        if compat_v2:
            text_padding = left_pad_mask(phoneme_lens, p)
            targets = eos_targets
        else:
            text_padding = right_pad_mask(phoneme_lens, p)
            past_eos = torch.arange(s + 1, device=codes.device).unsqueeze(0) > semantic_lens.unsqueeze(1)
            targets = eos_targets.masked_fill(past_eos, -100)
        x = torch.cat([self.embed_text(phoneme_ids, bert_feature), self.embed_semantic(eos_targets[:, :-1])], dim=1)
        mask = joint_attention_mask(text_padding, semantic_padding)
        hidden = self.h(x, mask)
        if compat_v2:
            hidden = hidden[:, p - 1 :]
        else:
            last_text = (phoneme_lens - 1).view(b, 1, 1).expand(-1, 1, hidden.shape[-1])
            hidden = torch.cat([hidden.gather(1, last_text), hidden[:, p:]], dim=1)
        return self.ar_predict_layer(hidden), targets

    def embed_step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One semantic token per row: ``tokens``/``positions`` ``[B]`` → ``[B,D]`` (the decode step's input)."""
        return self.ar_audio_position.at(F.embedding(tokens, self.ar_audio_embedding.word_embeddings.weight), positions)


def config_from_weights(state: Mapping[str, torch.Tensor], num_heads: int) -> GPTConfig:
    """Network sizes read off a v2-keyed state dict (with or without ``model.``); only the head count is not
    recoverable from shapes, so the caller passes it (v2 configs call it ``head``)."""
    cleaned = {k.removeprefix("model."): v for k, v in state.items()}
    layers = {int(k.split(".")[2]) for k in cleaned if k.startswith("h.layers.")}
    embedding_dim = int(cleaned["ar_text_embedding.word_embeddings.weight"].shape[1])
    return GPTConfig(
        phoneme_vocab_size=int(cleaned["ar_text_embedding.word_embeddings.weight"].shape[0]),
        vocab_size=int(cleaned["ar_audio_embedding.word_embeddings.weight"].shape[0]),
        embedding_dim=embedding_dim,
        hidden_dim=int(cleaned["h.layers.0.norm1.weight"].shape[0]),
        num_heads=num_heads,
        num_layers=max(layers) + 1 if layers else 0,
        ffn_dim=int(cleaned["h.layers.0.linear1.weight"].shape[0]),
    )


def model_from_weights(
    state: Mapping[str, torch.Tensor], num_heads: int, dtype: torch.dtype = torch.float32
) -> Text2SemanticModel:
    """A ready (eval-mode) network sized by and loaded from a v2-keyed state dict, in ``dtype``."""
    model = Text2SemanticModel(config_from_weights(state, num_heads))
    load_v2_state_dict(model, state)
    return model.to(dtype).eval()


def load_v2_state_dict(model: Text2SemanticModel, state: Mapping[str, torch.Tensor]) -> None:
    """Strictly load v2 GPT weights (with or without the ``model.`` prefix of official ``.ckpt`` files)."""
    cleaned = {k.removeprefix("model."): v for k, v in state.items()}
    target_dtype = next(model.parameters()).dtype
    model.load_state_dict({k: v.to(target_dtype) for k, v in cleaned.items()}, strict=True)

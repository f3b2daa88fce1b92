"""Text-to-semantic decoder (GPT stage) with GPT-SoVITS v2 state-dict names.

The network is one stack of post-norm transformer layers over ``[phonemes ; semantic tokens]``: phonemes attend
to all phonemes, semantic tokens attend to all phonemes plus earlier semantic tokens. Parameter names follow the
reference ``Text2SemanticDecoder`` (``h.layers.N.self_attn.in_proj_weight`` ...) so official v2 weights load
strictly, but attention runs through ``scaled_dot_product_attention`` on our own fused projection so the same layer
code serves teacher-forced training and KV-cache decoding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BERT_DIM = 1024


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


class ScaledSinePosition(nn.Module):
    """``x + alpha * PE``: a learned scalar scales a fixed sinusoidal table (even channels sin, odd cos).

    The table is a non-persistent buffer (v2 checkpoints hold only ``alpha``), computed once up to
    ``max_positions`` so decoding never rebuilds it.
    """

    def __init__(self, dim: int, max_positions: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        position = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(max_positions, dim)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq)
        self.register_buffer("table", table, persistent=False)

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


class FusedSelfAttention(nn.Module):
    """Multi-head attention with a fused ``in_proj`` (v2 layout) computed by SDPA; optionally writes a KV cache."""

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

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` [B,T,D] → q, k, v each [B,H,T,D/H]."""
        b, t, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, t, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        b, h, t, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, h * d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, dropout: float = 0.0) -> torch.Tensor:
        q, k, v = self.project(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout))


class DecoderLayer(nn.Module):
    """Post-norm layer: ``x = LN(x + Attn(x)); x = LN(x + FFN(x))`` with ReLU (v2 ``norm_first=False``)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = FusedSelfAttention(dim, heads)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = dropout

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.dropout(F.relu(self.linear1(x)), self.dropout, self.training)
        return self.norm2(x + F.dropout(self.linear2(hidden), self.dropout, self.training))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        attended = self.self_attn(x, mask, p)
        x = self.norm1(x + F.dropout(attended, p, self.training))
        return self.feed_forward(x)


class DecoderStack(nn.Module):
    """Holds ``layers`` so keys read ``h.layers.N.*`` as in v2."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.hidden_dim, cfg.num_heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.num_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
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
    """
    p, s = text_padding.shape[1], semantic_padding.shape[1]
    device = text_padding.device
    structure = torch.zeros(p + s, p + s, dtype=torch.bool, device=device)
    structure[:, :p] = True
    structure[p:, p:] = torch.ones(s, s, dtype=torch.bool, device=device).tril()
    keys_valid = ~torch.cat([text_padding, semantic_padding], dim=1)
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

    def generate(
        self, phoneme_ids: torch.Tensor, bert_feature: torch.Tensor, prompt: torch.Tensor | None = None, **kwargs
    ):
        """KV-cache decoding; see :meth:`gpt_sovits_train.models.gpt.sampling.KVDecoder.generate`."""
        from gpt_sovits_train.models.gpt.sampling import KVDecoder

        return KVDecoder(self).generate(phoneme_ids, bert_feature, prompt, **kwargs)

    def stream(
        self, phoneme_ids: torch.Tensor, bert_feature: torch.Tensor, prompt: torch.Tensor | None = None, **kwargs
    ):
        """Chunked batch-1 decoding; see :meth:`gpt_sovits_train.models.gpt.sampling.KVDecoder.stream`."""
        from gpt_sovits_train.models.gpt.sampling import KVDecoder

        return KVDecoder(self).stream(phoneme_ids, bert_feature, prompt, **kwargs)


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

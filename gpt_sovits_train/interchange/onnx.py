"""ONNX export of the GPT stage (prefill + one KV-cache step) and the SoVITS decoder.

The GPT graphs are built here from the v2 state dict (its key names are the contract, ``docs/design.md``) with
static-shape-friendly operations only: explicit multi-head attention on tensors, KV caches as plain inputs and
outputs, no Python-side control flow. Sampling (top-k/top-p, penalties, EOS rules) stays in the host program,
because it is cheap and differs between applications.

* ``prefill``: ``(phoneme_ids [1,P], bert [1,1024,P], prompt [1,S]) -> (logits [1,1025], k_cache, v_cache)``
  with caches ``[n_layer, 1, P+S, D]``.
* ``step``: ``(token [1,1], position [1], k_cache, v_cache) -> (logits [1,1025], k_cache', v_cache')`` where
  ``position`` is the token's index among semantic tokens (prompt included), since positions restart at 0 there.
* SoVITS: ``decode(codes [1,1,T], text [1,P], refer_spec [1,1025,F]) -> wav`` exported by tracing the network's
  own ``decode`` with ``noise_scale`` fixed at export time, for fixed lengths (see the function's docstring).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def _sine_table(length: int, dim: int) -> torch.Tensor:
    """v2 positional table: even channels sin, odd channels cos, frequencies exp(-ln(10000)·2i/d)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table


class _Layer(nn.Module):
    """One post-norm encoder layer (v2 ``h.layers.i``) written with explicit attention for export."""

    def __init__(self, weights: Mapping[str, torch.Tensor], prefix: str, heads: int) -> None:
        super().__init__()
        for name in (
            "self_attn.in_proj_weight",
            "self_attn.in_proj_bias",
            "self_attn.out_proj.weight",
            "self_attn.out_proj.bias",
            "linear1.weight",
            "linear1.bias",
            "linear2.weight",
            "linear2.bias",
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias",
        ):
            self.register_buffer(name.replace(".", "_"), weights[prefix + name].float().clone())
        self.heads = heads
        self.dim = int(weights[prefix + "norm1.weight"].shape[0])  # a Python int keeps layer_norm exportable

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return F.linear(x, self.self_attn_in_proj_weight, self.self_attn_in_proj_bias).chunk(3, dim=-1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length = q.shape[0], q.shape[1]
        dim = self.dim
        head_dim = dim // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, -1, self.heads, head_dim).transpose(1, 2)

        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(head_dim)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ split(v)
        return F.linear(
            out.transpose(1, 2).reshape(batch, length, dim),
            self.self_attn_out_proj_weight,
            self.self_attn_out_proj_bias,
        )

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        dim = self.dim
        x = F.layer_norm(x + attended, (dim,), self.norm1_weight, self.norm1_bias, 1e-5)
        ffn = F.linear(
            F.relu(F.linear(x, self.linear1_weight, self.linear1_bias)), self.linear2_weight, self.linear2_bias
        )
        return F.layer_norm(x + ffn, (dim,), self.norm2_weight, self.norm2_bias, 1e-5)


class _T2SCore(nn.Module):
    def __init__(self, weights: Mapping[str, torch.Tensor], heads: int, max_positions: int = 4096) -> None:
        super().__init__()
        get = lambda key: weights[key].float().clone()  # noqa: E731 - short local accessor
        self.register_buffer("text_embedding", get("ar_text_embedding.word_embeddings.weight"))
        self.register_buffer("audio_embedding", get("ar_audio_embedding.word_embeddings.weight"))
        self.register_buffer("text_alpha", get("ar_text_position.alpha"))
        self.register_buffer("audio_alpha", get("ar_audio_position.alpha"))
        self.register_buffer("bert_weight", get("bert_proj.weight"))
        self.register_buffer("bert_bias", get("bert_proj.bias"))
        self.register_buffer("predict", get("ar_predict_layer.weight"))
        dim = self.text_embedding.shape[1]
        self.register_buffer("positions", _sine_table(max_positions, dim))
        count = len({k.split(".")[2] for k in weights if k.startswith("h.layers.")})
        self.layers = nn.ModuleList(_Layer(weights, f"h.layers.{i}.", heads) for i in range(count))


class T2SPrefill(_T2SCore):
    """Phonemes + BERT + semantic prompt → logits of the next token and the per-layer K/V caches."""

    def forward(self, phoneme_ids: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor):
        text_len, prompt_len = phoneme_ids.shape[1], prompt.shape[1]
        x = F.embedding(phoneme_ids, self.text_embedding) + F.linear(
            bert.transpose(1, 2), self.bert_weight, self.bert_bias
        )
        x = x + self.text_alpha * self.positions[:text_len].unsqueeze(0)
        y = F.embedding(prompt, self.audio_embedding) + self.audio_alpha * self.positions[:prompt_len].unsqueeze(0)
        h = torch.cat([x, y], dim=1)
        total = text_len + prompt_len
        # Phonemes see only phonemes; semantic tokens see all phonemes and earlier semantic tokens.
        row = torch.arange(total).unsqueeze(1)
        col = torch.arange(total).unsqueeze(0)
        blocked = ((row < text_len) & (col >= text_len)) | ((row >= text_len) & (col > row))
        keys, values = [], []
        for layer in self.layers:
            q, k, v = layer.qkv(h)
            keys.append(k)
            values.append(v)
            h = layer.finish(h, layer.attend(q, k, v, blocked))
        logits = F.linear(h[:, -1], self.predict)
        return logits, torch.stack(keys), torch.stack(values)


class T2SStep(_T2SCore):
    """One new semantic token attending to the cache → logits and the grown caches."""

    def forward(self, token: torch.Tensor, position: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor):
        h = F.embedding(token, self.audio_embedding) + self.audio_alpha * self.positions[position].unsqueeze(0)
        keys, values = [], []
        for index, layer in enumerate(self.layers):
            q, k, v = layer.qkv(h)
            k_all = torch.cat([k_cache[index], k], dim=1)
            v_all = torch.cat([v_cache[index], v], dim=1)
            keys.append(k_all)
            values.append(v_all)
            h = layer.finish(h, layer.attend(q, k_all, v_all, None))
        return F.linear(h[:, -1], self.predict), torch.stack(keys), torch.stack(values)


def export_gpt_onnx(weights: Mapping[str, torch.Tensor], heads: int, folder: str | Path, opset: int = 17):
    """Write ``t2s_prefill.onnx`` and ``t2s_step.onnx`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefill, step = T2SPrefill(weights, heads).eval(), T2SStep(weights, heads).eval()
    bert_dim = prefill.bert_weight.shape[1]
    example = (torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, bert_dim, 5), torch.zeros(1, 3, dtype=torch.long))
    _, k_cache, v_cache = prefill(*example)
    paths = {"prefill": folder / "t2s_prefill.onnx", "step": folder / "t2s_step.onnx"}
    torch.onnx.export(
        prefill,
        example,
        str(paths["prefill"]),
        opset_version=opset,
        dynamo=False,
        input_names=["phoneme_ids", "bert", "prompt"],
        output_names=["logits", "k_cache", "v_cache"],
        dynamic_axes={
            "phoneme_ids": {1: "P"},
            "bert": {2: "P"},
            "prompt": {1: "S"},
            "k_cache": {2: "T"},
            "v_cache": {2: "T"},
        },
    )
    torch.onnx.export(
        step,
        (torch.zeros(1, 1, dtype=torch.long), torch.tensor([3]), k_cache, v_cache),
        str(paths["step"]),
        opset_version=opset,
        dynamo=False,
        input_names=["token", "position", "k_cache_in", "v_cache_in"],
        output_names=["logits", "k_cache", "v_cache"],
        dynamic_axes={"k_cache_in": {2: "T"}, "v_cache_in": {2: "T"}, "k_cache": {2: "T1"}, "v_cache": {2: "T1"}},
    )
    return paths


class _SoVITSDecode(nn.Module):
    def __init__(self, network: nn.Module, noise_scale: float, speed: float) -> None:
        super().__init__()
        self.network, self.noise_scale, self.speed = network, noise_scale, speed

    def forward(self, codes: torch.Tensor, text: torch.Tensor, refer_spec: torch.Tensor) -> torch.Tensor:
        return self.network.decode(codes, text, refer_spec, noise_scale=self.noise_scale, speed=self.speed)


def export_sovits_decoder_onnx(
    network: nn.Module,
    path: str | Path,
    codes_length: int = 24,
    text_length: int = 60,
    spec_frames: int = 150,
    noise_scale: float = 0.0,
    speed: float = 1.0,
    opset: int = 17,
) -> Path:
    """Trace ``network.decode`` (eval mode) to ONNX for fixed input lengths.

    The v2 decoder derives sizes (upsampling, interpolation, masks) from Python integers, so a traced graph is
    only valid for the lengths it was traced with. Streaming uses fixed-size token chunks anyway: export one graph
    per (chunk size, phone count bucket, reference length) a deployment needs, padding inputs to the bucket.
    """
    decoder = getattr(network, "decoder", "hifigan")
    if decoder != "hifigan":
        # torch.onnx has no export for the complex-valued torch.istft the iSTFT head ends with
        raise ValueError(
            f"the SoVITS decoder {decoder!r} cannot be exported to ONNX (torch.istft has no ONNX export); export a "
            "network with the HiFi-GAN decoder (decoder=hifigan), or serve this one with PyTorch"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _SoVITSDecode(network.eval(), noise_scale, speed)
    example = (
        torch.zeros(1, 1, codes_length, dtype=torch.long),
        torch.ones(1, text_length, dtype=torch.long),
        torch.rand(1, network_spec_channels(network), spec_frames),
    )
    torch.onnx.export(
        wrapper,
        example,
        str(path),
        opset_version=opset,
        dynamo=False,
        input_names=["codes", "text", "refer_spec"],
        output_names=["wav"],
    )
    return path


def network_spec_channels(network: nn.Module) -> int:
    """Linear-spectrogram bins the generator expects (1025 for the v2 2048-point FFT)."""
    return int(getattr(network, "spec_channels", 1025))

"""ONNX export of the GPT stage (prefill + one KV-cache step) and the SoVITS decoder.

The GPT graphs trace our own network (:func:`~gpt_sovits_train.models.gpt.model.decoder_layer`, built from the
v2 state dict whose key names are the contract, ``docs/design.md``); only the key/value handling is the export's:
KV caches as plain inputs and outputs, no Python-side control flow. Sampling (top-k/top-p, penalties, EOS rules)
stays in the host program, because it is cheap and differs between applications.

* ``prefill``: ``(phoneme_ids [1,P], bert [1,1024,P], prompt [1,S]) -> (logits [1,1025], k_cache, v_cache)``
  with caches ``[n_layer, 1, P+S, D]``.
* ``step``: ``(token [1,1], position [1], k_cache, v_cache) -> (logits [1,1025], k_cache', v_cache')`` where
  ``position`` is the token's index among semantic tokens (prompt included), since positions restart at 0 there.
* SoVITS: ``decode(codes [1,1,T], text [1,P], refer_spec [1,1025,F]) -> wav`` exported by tracing the network's
  own ``decode`` with ``noise_scale`` fixed at export time, for fixed lengths (see the function's docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits_train.models.gpt.model import decoder_layer, joint_attention_mask, model_from_weights


class _T2SGraph(nn.Module):
    """The float32 network built from v2 weights; the graphs trace its own layer (:func:`decoder_layer`), only the
    key/value handling is the export's (caches ``[n_layer, 1, T, D]`` with the heads side by side)."""

    def __init__(self, weights: Mapping[str, torch.Tensor], heads: int) -> None:
        super().__init__()
        self.model = model_from_weights(weights, heads)
        self.heads = heads

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """``[1,T,D]`` → ``[1,H,T,D/H]``."""
        return t.reshape(t.shape[0], t.shape[1], self.heads, -1).transpose(1, 2)

    @staticmethod
    def merge(t: torch.Tensor) -> torch.Tensor:
        """``[1,H,T,D/H]`` → ``[1,T,D]``."""
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1)


class T2SPrefill(_T2SGraph):
    """Phonemes + BERT + semantic prompt → logits of the next token and the per-layer K/V caches."""

    def forward(self, phoneme_ids: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor):
        model = self.model
        x = torch.cat([model.embed_text(phoneme_ids, bert), model.embed_semantic(prompt)], dim=1)
        padding = torch.zeros_like(x[:, :, 0], dtype=torch.bool)  # batch 1, no padding
        p = phoneme_ids.shape[1]
        mask = joint_attention_mask(padding[:, :p], padding[:, p:])
        keys, values = [], []

        def keep(index: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            keys.append(self.merge(k))
            values.append(self.merge(v))
            return k, v

        h = model.h(x, mask, keep)
        return model.ar_predict_layer(h[:, -1]), torch.stack(keys), torch.stack(values)


def matmul_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` traced as ``MatMul`` (+ ``Add``): torch exports ``F.linear`` on a ``[1,D]`` row as ``Gemm``, which
    ONNX Runtime's weight-only quantizer leaves in float32 (``runtime/onnx_gpt.py`` rewrites ``MatMul`` only)."""
    y = torch.matmul(x, weight.t())
    return y if bias is None else y + bias


class T2SStep(_T2SGraph):
    """One new semantic token attending to the cache → logits and the grown caches; every matrix product is a
    ``MatMul`` on a constant weight (:func:`matmul_linear`), so the step graph can be quantized matrix by matrix."""

    def forward(self, token: torch.Tensor, position: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor):
        model = self.model
        x = model.embed_step(token[:, 0], position)  # [1, D]
        keys, values = [], []
        for index, layer in enumerate(model.h.layers):

            def attend(qkv: torch.Tensor, index: int = index) -> torch.Tensor:
                q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)
                keys.append(torch.cat([k_cache[index], k], dim=1))
                values.append(torch.cat([v_cache[index], v], dim=1))
                out = F.scaled_dot_product_attention(self.split(q), self.split(keys[-1]), self.split(values[-1]))
                return self.merge(out)[:, 0]

            x = decoder_layer(x, layer.weights(), attend, linear=matmul_linear)
        head = model.ar_predict_layer
        return matmul_linear(x, head.weight, head.bias), torch.stack(keys), torch.stack(values)


def export_gpt_onnx(weights: Mapping[str, torch.Tensor], heads: int, folder: str | Path, opset: int = 17):
    """Write ``t2s_prefill.onnx`` and ``t2s_step.onnx`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefill, step = T2SPrefill(weights, heads).eval(), T2SStep(weights, heads).eval()
    bert_dim = prefill.model.bert_proj.weight.shape[1]
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

"""``gst-export``: our checkpoints → GPT-SoVITS v2 files and/or safetensors + resolved config.

The v2 files are what the official GPT-SoVITS web UI loads (``GPT_weights_v2/*.ckpt``, ``SoVITS_weights_v2/*.pth``);
the safetensors pair is our own portable format (no pickle at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file

from gpt_sovits_train.interchange.checkpoints import network_config_beside, network_weights
from gpt_sovits_train.interchange.gpt_sovits_v2 import (
    POSTERIOR_ENCODER_PREFIX,
    gpt_v2_config,
    load_weights_strict,
    sovits_v2_hparams,
    write_gpt_v2,
    write_sovits_v2,
)
from gpt_sovits_train.interchange.redact import redact

# GPT-SoVITS v2's SynthesizerTrn keyword arguments (its configs/s2.json "model" section): what a v2 ``.pth``'s
# ``config["model"]`` must hold for the reference loader, ``SynthesizerTrn(..., **config["model"])``, to work.
V2_SOVITS_GENERATOR: dict[str, Any] = {
    "inter_channels": 192,
    "hidden_channels": 192,
    "filter_channels": 768,
    "n_heads": 2,
    "n_layers": 6,
    "kernel_size": 3,
    "p_dropout": 0.1,
    "resblock": "1",
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "upsample_rates": [10, 8, 2, 2, 2],
    "upsample_initial_channel": 512,
    "upsample_kernel_sizes": [16, 16, 8, 2, 2],
    "n_layers_q": 3,
    "use_spectral_norm": False,
    "gin_channels": 512,
}


def sovits_generator_kwargs(checkpoint: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The complete v2 generator kwargs for ``checkpoint``: v2's defaults, then the sizes of the training run
    that wrote it (its ``resolved_config.yaml``, when beside), then ``overrides``. Never a partial dict: a v2
    loader passes every one of these to ``SynthesizerTrn``."""
    kwargs = dict(V2_SOVITS_GENERATOR)
    net = network_config_beside(checkpoint) if Path(checkpoint).suffix != ".pth" else None
    kwargs.update({k: v for k, v in (net or {}).items() if k in V2_SOVITS_GENERATOR})
    kwargs.update(dict(overrides or {}))
    return kwargs


def export_safetensors(weights: Mapping, config: Mapping[str, Any], folder: str | Path, name: str) -> dict[str, Path]:
    """Write ``<name>.safetensors`` and ``<name>.yaml`` (the resolved config) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = folder / f"{name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tensors))
    config_path = folder / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return {"weights": tensors, "config": config_path}


def export_sovits_onnx(weights: Mapping, hparams: Mapping[str, Any], path: Path) -> Path:
    """The SoVITS decoder (codes + phones + reference spectrogram -> wav) as ONNX, traced at the default lengths
    of :func:`~gpt_sovits_train.interchange.onnx.export_sovits_decoder_onnx`. The network is built from the v2
    config being exported (no config file is instantiated), so the graph matches the .pth written beside it."""
    from gpt_sovits_train.interchange.checkpoints import sovits_network_from_v2_config
    from gpt_sovits_train.interchange.onnx import export_sovits_decoder_onnx

    network = sovits_network_from_v2_config(dict(hparams))
    load_weights_strict(network, weights, ignore_prefixes=(POSTERIOR_ENCODER_PREFIX,))
    return export_sovits_decoder_onnx(network, path)


def export_models(
    output_dir: str | Path,
    name: str,
    gpt_checkpoint: str | Path | None = None,
    sovits_checkpoint: str | Path | None = None,
    gpt_heads: int = 16,
    max_sec: int = 54,
    sovits_model: Mapping[str, Any] | None = None,
    formats: tuple[str, ...] = ("v2", "safetensors"),
    resolved_config: Mapping[str, Any] | None = None,
    epoch: int = 0,
    steps: int = 0,
) -> dict[str, Path]:
    """Export whichever checkpoints are given, in each requested format; returns the written paths.

    ``sovits_model`` overrides single v2 generator kwargs (see :func:`sovits_generator_kwargs`); by default they
    come from the checkpoint's training run, else v2's sizes."""
    unknown = set(formats) - {"v2", "safetensors", "onnx"}
    if unknown:
        raise ValueError(f"unknown export formats {sorted(unknown)}; use any of 'v2', 'safetensors', 'onnx'")
    if gpt_checkpoint is None and sovits_checkpoint is None:
        raise ValueError("nothing to export: set gpt_checkpoint and/or sovits_checkpoint")
    out = Path(output_dir)
    written: dict[str, Path] = {}
    resolved_config = redact(dict(resolved_config or {}), "exported config")  # no +hf_token=... in shared files
    if gpt_checkpoint is not None:
        weights = network_weights(gpt_checkpoint, "gpt")
        config = gpt_v2_config(weights, gpt_heads, max_sec)
        if "v2" in formats:
            written["gpt_v2"] = write_gpt_v2(weights, config, out / "GPT_weights_v2" / f"{name}-e{epoch}.ckpt", epoch)
        if "safetensors" in formats:
            full = {"v2_config": config, **resolved_config}
            written["gpt_safetensors"] = export_safetensors(weights, full, out, f"{name}_gpt")["weights"]
        if "onnx" in formats:
            from gpt_sovits_train.interchange.onnx import export_gpt_onnx

            paths = export_gpt_onnx(weights, gpt_heads, out / "onnx")
            written["gpt_onnx_prefill"], written["gpt_onnx_step"] = paths["prefill"], paths["step"]
    if sovits_checkpoint is not None:
        weights = network_weights(sovits_checkpoint, "sovits")
        hparams = sovits_v2_hparams(sovits_generator_kwargs(sovits_checkpoint, sovits_model))
        if "v2" in formats:
            path = out / "SoVITS_weights_v2" / f"{name}_e{epoch}_s{steps}.pth"
            written["sovits_v2"] = write_sovits_v2(weights, hparams, path, epoch, steps)
        if "safetensors" in formats:
            kept = {k: v for k, v in weights.items() if not k.startswith(POSTERIOR_ENCODER_PREFIX)}
            full = {"v2_config": hparams, **resolved_config}
            written["sovits_safetensors"] = export_safetensors(kept, full, out, f"{name}_sovits")["weights"]
        if "onnx" in formats:
            written["sovits_onnx_decoder"] = export_sovits_onnx(weights, hparams, out / "onnx" / "sovits_decode.onnx")
    return written

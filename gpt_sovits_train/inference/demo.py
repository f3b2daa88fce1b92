"""A complete tiny synthesizer for demos, notebooks and tests: the tiny reference GPT/SoVITS weights (written to
and read back from official v2 files, so the import path is exercised) plus random-init HuBERT/BERT.

The voice is meaningless (all weights are random); the code path is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from gpt_sovits_train.inference.factory import decoder_generate_fn
from gpt_sovits_train.inference.loading import network_weights
from gpt_sovits_train.inference.sovits_runtime import prepare_sovits_for_inference
from gpt_sovits_train.inference.synthesizer import Synthesizer
from gpt_sovits_train.interchange.gpt_sovits_v2 import (
    write_gpt_v2,
    write_sovits_v2,
)
from gpt_sovits_train.interchange.t2s_decode import CachedT2S


def write_tiny_v2_files(reference_dir: str | Path, folder: str | Path) -> dict[str, Path]:
    """Pack ``tiny_t2s``/``tiny_sovits`` fixtures as ``GPT_weights_v2/*.ckpt`` and ``SoVITS_weights_v2/*.pth``."""
    reference_dir, folder = Path(reference_dir), Path(folder)
    files = {}
    for name, kind in (("tiny_t2s", "gpt"), ("tiny_sovits", "sovits")):
        tensors = load_file(str(reference_dir / f"{name}.safetensors"))
        config = json.loads((reference_dir / f"{name}.json").read_text())["config"]
        weights = {k[len("weight.") :]: v for k, v in tensors.items() if k.startswith("weight.")}
        if kind == "gpt":
            files[kind] = write_gpt_v2(weights, config, folder / "GPT_weights_v2" / "tiny-e1.ckpt", epoch=1)
        else:
            files[kind] = write_sovits_v2(weights, config, folder / "SoVITS_weights_v2" / "tiny_e1_s1.pth", 1, 1)
    return files


def build_tiny_synthesizer(reference_dir: str | Path, random_models: dict[str, Path], workdir: str | Path):
    """Tiny end-to-end synthesizer; needs ``gpt_sovits_train.models.sovits``."""
    from gpt_sovits_train.features.bert import ChineseBertExtractor
    from gpt_sovits_train.features.ssl import HubertExtractor
    from gpt_sovits_train.inference.loading import sovits_network_from_v2

    files = write_tiny_v2_files(reference_dir, workdir)
    network = sovits_network_from_v2(files["sovits"])
    heads = json.loads((Path(reference_dir) / "tiny_t2s.json").read_text())["config"]["model"]["head"]
    generate = decoder_generate_fn(CachedT2S(network_weights(files["gpt"], "gpt"), heads=heads))
    return Synthesizer(
        generate,
        prepare_sovits_for_inference(network),
        HubertExtractor(random_models["ssl"], device="cpu"),
        ChineseBertExtractor(random_models["bert"], device="cpu"),
        model_name="tiny-demo-voice (random weights)",
    )

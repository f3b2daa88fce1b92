"""Round trip: our Lightning checkpoint → gst-export (v2 files + safetensors) → our weights, identical tensors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from gpt_sovits_train.inference.loading import network_weights
from gpt_sovits_train.interchange.gpt_sovits_v2 import gpt_v2_config, read_gpt_v2, read_sovits_v2

REPO = Path(__file__).resolve().parents[2]


def _lightning_checkpoint(ref_dir: Path, name: str, path: Path) -> dict[str, torch.Tensor]:
    """Our Lightning layout (network under ``net.``, float32) holding the tiny reference weights."""
    weights = {
        k[7:]: v.float() for k, v in load_file(str(ref_dir / f"{name}.safetensors")).items() if k.startswith("weight.")
    }
    torch.save({"state_dict": {f"net.{k}": v for k, v in weights.items()}, "epoch": 2, "global_step": 40}, path)
    return weights


def test_gpt_config_read_off_weights(ref_dir: Path) -> None:
    weights = {k[7:]: v for k, v in load_file(str(ref_dir / "tiny_t2s.safetensors")).items() if k.startswith("weight.")}
    expected = json.loads((ref_dir / "tiny_t2s.json").read_text())["config"]["model"]
    assert gpt_v2_config(weights, heads=expected["head"])["model"] == expected


@pytest.mark.slow  # 69 s on 2 loaded cores (CLI subprocess or training run)
def test_cli_export_round_trip(ref_dir: Path, tmp_path: Path) -> None:
    gpt = _lightning_checkpoint(ref_dir, "tiny_t2s", tmp_path / "gpt.ckpt")
    sovits = _lightning_checkpoint(ref_dir, "tiny_sovits", tmp_path / "sovits.ckpt")
    tiny = json.loads((ref_dir / "tiny_sovits.json").read_text())["config"]["model"]
    gpt_config = json.loads((ref_dir / "tiny_t2s.json").read_text())["config"]["model"]
    out = tmp_path / "exported"
    overrides = [f"++sovits.model.{k}={json.dumps(v)}" for k, v in tiny.items() if k != "version"]
    command = [
        sys.executable,
        "-m",
        "gpt_sovits_train.cli.export",
        f"gpt_checkpoint={tmp_path / 'gpt.ckpt'}",
        f"sovits_checkpoint={tmp_path / 'sovits.ckpt'}",
        f"output_dir={out}",
        "name=tiny",
        "epoch=2",
        "steps=40",
        f"gpt.heads={gpt_config['head']}",
        "formats=[v2,safetensors,onnx]",
        *overrides,
    ]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]

    gpt_back = read_gpt_v2(out / "GPT_weights_v2" / "tiny-e2.ckpt")
    assert gpt_back.info == "GPT-e2" and gpt_back.config["model"]["head"] == gpt_config["head"]
    sovits_back = read_sovits_v2(out / "SoVITS_weights_v2" / "tiny_e2_s40.pth")
    assert sovits_back.config["model"]["inter_channels"] == tiny["inter_channels"]
    for original, back in (
        (gpt, gpt_back.weights),
        (sovits, sovits_back.weights),
        (gpt, network_weights(out / "tiny_gpt.safetensors", "gpt")),
        (sovits, network_weights(out / "tiny_sovits.safetensors", "sovits")),
    ):
        expected = {k: v for k, v in original.items() if not k.startswith("enc_q.")}
        assert set(back) == set(expected)
        for key, value in expected.items():
            assert torch.equal(back[key], value), key
    assert (out / "onnx" / "t2s_prefill.onnx").is_file() and (out / "onnx" / "t2s_step.onnx").is_file()
    import onnxruntime  # the README promises the SoVITS decoder too: it loads and names its inputs

    session = onnxruntime.InferenceSession(str(out / "onnx" / "sovits_decode.onnx"))
    assert [i.name for i in session.get_inputs()] == ["codes", "text", "refer_spec"]
    resolved = yaml.safe_load((out / "tiny_gpt.yaml").read_text())
    assert resolved["name"] == "tiny" and resolved["v2_config"]["model"]["n_layer"] == gpt_config["n_layer"]


def test_cli_reports_missing_inputs(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gpt_sovits_train.cli.export", f"output_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "nothing to export" in run.stderr


def test_v2_files_import_to_safetensors(ref_dir: Path, tmp_path: Path) -> None:
    """Official v2 files → our pickle-free format: the same tensors (float16 values, stored as float32)."""
    from gpt_sovits_train.inference.demo import write_tiny_v2_files
    from gpt_sovits_train.interchange.export import export_models

    files = write_tiny_v2_files(ref_dir, tmp_path / "v2")
    heads = json.loads((ref_dir / "tiny_t2s.json").read_text())["config"]["model"]["head"]
    written = export_models(
        tmp_path / "ours", "imported", files["gpt"], files["sovits"], gpt_heads=heads, formats=("safetensors",)
    )
    for kind, reader in (("gpt", read_gpt_v2), ("sovits", read_sovits_v2)):
        original = reader(files[kind]).weights
        ours = load_file(str(written[f"{kind}_safetensors"]))
        assert set(ours) == set(original)
        assert all(torch.equal(ours[k], v) for k, v in original.items())


def test_gpt_module_checkpoint_round_trip(tmp_path: Path) -> None:
    """A GPTModule checkpoint (optimizer partial in hyper_parameters) → v2 .ckpt → back into a network: identical."""
    import functools

    from gpt_sovits_train.inference.loading import gpt_network_from_v2
    from gpt_sovits_train.interchange.export import export_models
    from gpt_sovits_train.lit import gpt_module as lit
    from gpt_sovits_train.models.gpt import GPTConfig, Text2SemanticModel

    net = Text2SemanticModel(GPTConfig(embedding_dim=64, hidden_dim=64, num_heads=4, num_layers=2, ffn_dim=256))
    with torch.no_grad():  # float16-representable values so the float16 v2 file holds them exactly
        for tensor in net.state_dict().values():
            tensor.copy_(tensor.half().float())
    module = lit.GPTModule(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3))
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 3}, checkpoint)
    written = export_models(tmp_path / "out", "mine", gpt_checkpoint=checkpoint, gpt_heads=4, formats=("v2",))
    back = gpt_network_from_v2(written["gpt_v2"])
    for key, value in net.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


# SynthesizerTrn(spec_channels, segment_size, n_speakers=..., **config["model"]): every argument after the two
# positional ones that has no default in GPT-SoVITS v2's module/models.py.
V2_SYNTHESIZER_REQUIRED = {
    "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size", "p_dropout",
    "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_initial_channel",
    "upsample_kernel_sizes",
}


@pytest.mark.slow  # 21 s on 2 loaded cores (CLI subprocess or training run)
def test_python_export_default_writes_full_v2_sovits_config(ref_dir: Path, tmp_path: Path) -> None:
    """``export_models(..., sovits_model=None)`` (the default) used to write ``config.model`` with 3 fields, which
    the reference's loader cannot construct a SynthesizerTrn from. Sizes come from the run that wrote the
    checkpoint."""
    from omegaconf import OmegaConf

    from gpt_sovits_train.inference.loading import sovits_network_from_v2
    from gpt_sovits_train.interchange.export import export_models

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    weights = _lightning_checkpoint(ref_dir, "tiny_sovits", run / "checkpoints" / "last.ckpt")
    tiny = OmegaConf.load(REPO / "conf" / "model" / "sovits" / "tiny.yaml")  # the preset, sized as the fixture
    fixture_model = json.loads((ref_dir / "tiny_sovits.json").read_text())["config"]["model"]
    tiny = OmegaConf.merge(tiny, {k: v for k, v in fixture_model.items() if k in tiny})
    OmegaConf.save(OmegaConf.create({"model": {"net": tiny}}), run / "resolved_config.yaml")
    written = export_models(tmp_path / "out", "mine", sovits_checkpoint=run / "checkpoints" / "last.ckpt",
                            formats=("v2",))
    config = read_sovits_v2(written["sovits_v2"]).config
    assert set(config["model"]) >= V2_SYNTHESIZER_REQUIRED, sorted(V2_SYNTHESIZER_REQUIRED - set(config["model"]))
    assert config["model"]["inter_channels"] == tiny.inter_channels and config["model"]["resblock"] == "1"
    manifest = ref_dir / "v2_state_dict_manifest.json"
    if manifest.is_file():  # the reference's own construction record, when the fixtures carry it
        kwargs = json.loads(manifest.read_text())["models"]["sovits_generator_v2"]["kwargs"]
        assert set(kwargs) - {"n_speakers", "version"} <= set(config["model"])
    network = sovits_network_from_v2(written["sovits_v2"])  # strict load: the written sizes are the weights' sizes
    kept = {k: v for k, v in weights.items() if not k.startswith("enc_q.")}
    assert all(torch.equal(network.state_dict()[k], v) for k, v in kept.items())

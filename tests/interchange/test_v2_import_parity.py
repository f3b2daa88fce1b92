"""The tiny reference weights, packed in the official v2 on-disk layout, import and reproduce the stored outputs.

GPT: through our export/decoding graphs (always available). SoVITS and our own GPT network: through the
``gpt_sovits_train.models`` classes, skipped with the reason until those modules provide them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from gpt_sovits_train.interchange.gpt_sovits_v2 import (
    POSTERIOR_ENCODER_PREFIX,
    load_weights_strict,
    read_gpt_v2,
    read_sovits_v2,
    write_gpt_v2,
    write_sovits_v2,
)
from gpt_sovits_train.interchange.t2s_decode import CachedT2S
from tests.reference_fixtures import early_stop_num


def _fixture(ref_dir: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(ref_dir / f"{name}.safetensors")), json.loads((ref_dir / f"{name}.json").read_text())


def _tolerance(meta: dict, key: str) -> dict[str, float]:
    spec = meta["recommended_tolerances"][key]
    return {"atol": 0.0, "rtol": 0.0} if spec == "exact" else {"atol": spec["atol"], "rtol": spec["rtol"]}


def test_gpt_ckpt_import_reproduces_reference_decode(ref_dir: Path, tmp_path: Path) -> None:
    tensors, meta = _fixture(ref_dir, "tiny_t2s")
    weights = {k[7:]: v for k, v in tensors.items() if k.startswith("weight.")}
    path = write_gpt_v2(weights, meta["config"], tmp_path / "tiny-e1.ckpt", epoch=1)
    imported = read_gpt_v2(path)
    heads = imported.config["model"]["head"]
    options = {"top_k": 1, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.35}
    options["early_stop_num"] = early_stop_num(meta)  # the fixture's decode length, not the vendored 19
    decoder = CachedT2S(imported.weights, heads)
    result = decoder(
        tensors["input.tf.phoneme_ids"],
        tensors["input.tf.bert_feature"],
        tensors["input.tf.prompt_semantic"],
        **options,
    )
    assert result.new_tokens.tolist() == tensors["output.greedy_rp135.new_ids"][0].tolist()
    assert result.idx == int(tensors["output.greedy_rp135.idx"][0])
    logits, _, _ = decoder.prefill(
        tensors["input.tf.phoneme_ids"], tensors["input.tf.bert_feature"], tensors["input.tf.prompt_semantic"]
    )
    torch.testing.assert_close(
        logits[0],
        tensors["output.greedy_rp135.step_logits_raw"][0],
        **_tolerance(meta, "output.greedy_rp135.step_logits_raw"),
    )


def test_sovits_pth_import_reproduces_reference_outputs(ref_dir: Path, tmp_path: Path) -> None:
    tensors, meta = _fixture(ref_dir, "tiny_sovits")
    weights = {k[7:]: v for k, v in tensors.items() if k.startswith("weight.")}
    path = write_sovits_v2(weights, meta["config"], tmp_path / "tiny_e1_s1.pth")
    imported = read_sovits_v2(path)
    config = imported.config
    from gpt_sovits_train.inference.loading import sovits_network_from_v2_config

    network = sovits_network_from_v2_config(config)
    load_weights_strict(network, imported.weights, ignore_prefixes=(POSTERIOR_ENCODER_PREFIX,))
    network.eval()
    with torch.no_grad():
        codes = network.extract_latent(tensors["input.latent.ssl"])
        assert torch.equal(codes, tensors["output.latent.codes"])
        torch.manual_seed(3)
        wav = network.decode(
            tensors["output.latent.codes"],
            tensors["input.decode.text"],
            tensors["output.decode.refer_spec"],
            noise_scale=0.0,
            speed=1,
        )
    torch.testing.assert_close(wav, tensors["output.decode.wav"], **_tolerance(meta, "output.decode.wav"))


def test_gpt_ckpt_import_into_our_network_reproduces_teacher_forced_logits(ref_dir: Path, tmp_path: Path) -> None:
    from gpt_sovits_train.inference.loading import gpt_network_from_v2
    from gpt_sovits_train.models.gpt import model as model_module

    tensors, meta = _fixture(ref_dir, "tiny_t2s")
    weights = {k[7:]: v for k, v in tensors.items() if k.startswith("weight.")}
    network = gpt_network_from_v2(write_gpt_v2(weights, meta["config"], tmp_path / "tiny-e1.ckpt"))
    assert isinstance(network, model_module.Text2SemanticModel)
    prompt, target = tensors["input.tf.prompt_semantic"], tensors["input.tf.target_semantic"]
    semantic = torch.cat([prompt, target], dim=1)
    with torch.no_grad():
        logits, targets = network.teacher_forced(
            tensors["input.tf.phoneme_ids"],
            tensors["input.tf.phoneme_len"],
            semantic,
            torch.tensor([semantic.shape[1]]),
            tensors["input.tf.bert_feature"],
            compat_v2=True,
        )
    assert torch.equal(targets, tensors["output.tf.targets"])
    torch.testing.assert_close(logits, tensors["output.tf.logits"], **_tolerance(meta, "output.tf.logits"))
    # Round trip: our network's weights → v2 file → identical tensors.
    again = read_gpt_v2(write_gpt_v2(network.state_dict(), meta["config"], tmp_path / "again.ckpt"))
    assert all(torch.equal(again.weights[k], v) for k, v in network.state_dict().items())

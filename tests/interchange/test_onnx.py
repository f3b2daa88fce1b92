"""ONNX GPT stage: the export graph reproduces the reference KV-cache decode, and onnxruntime matches PyTorch.

Tolerance: ONNX Runtime vs PyTorch logits within the fixture's recommended tolerance for the greedy step logits
(``recommended_tolerances`` in its JSON; 1e-4 / 1e-4 in the vendored set); both vs the stored reference logits within
the same bound; greedy ids exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gpt_sovits_train.interchange.onnx import T2SPrefill, T2SStep, export_gpt_onnx

EOS = 1024
EOS_BLOCKED_STEPS = 11  # v2 drops the EOS logit for the first 11 steps


@pytest.fixture(scope="module")
def fixture(ref_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ref_dir / "tiny_t2s.safetensors"))


@pytest.fixture(scope="module")
def heads(t2s_meta: dict) -> int:
    return t2s_meta["config"]["model"]["head"]


@pytest.fixture(scope="module")
def logits_tolerance(t2s_meta: dict) -> dict[str, float]:
    """The fixture's recommended bound for the greedy step logits."""
    node = t2s_meta["recommended_tolerances"]["output.greedy.step_logits_raw"]
    return {"atol": node["atol"], "rtol": node["rtol"]}


def _weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("weight.") :]: v for k, v in tensors.items() if k.startswith("weight.")}


def test_export_graph_matches_reference_decode(fixture, heads, logits_tolerance) -> None:
    prefill, step = T2SPrefill(_weights(fixture), heads=heads).eval(), T2SStep(_weights(fixture), heads=heads).eval()
    expected = fixture["output.greedy.step_logits_raw"]
    new_ids = fixture["output.greedy.new_ids"][0]
    prompt = fixture["input.tf.prompt_semantic"]
    with torch.no_grad():
        logits, keys, values = prefill(fixture["input.tf.phoneme_ids"], fixture["input.tf.bert_feature"], prompt)
        torch.testing.assert_close(logits[0], expected[0], **logits_tolerance)
        for s in range(1, expected.shape[0]):
            position = torch.tensor([prompt.shape[1] + s - 1])
            logits, keys, values = step(new_ids[s - 1].view(1, 1), position, keys, values)
            torch.testing.assert_close(logits[0], expected[s], **logits_tolerance)


def test_onnxruntime_matches_pytorch_and_greedy_ids(fixture, heads, logits_tolerance, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install -e .[dev])")
    weights = _weights(fixture)
    paths = export_gpt_onnx(weights, heads=heads, folder=tmp_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    prefill_session = ort.InferenceSession(str(paths["prefill"]), options, providers=["CPUExecutionProvider"])
    step_session = ort.InferenceSession(str(paths["step"]), options, providers=["CPUExecutionProvider"])
    torch_prefill, torch_step = T2SPrefill(weights, heads).eval(), T2SStep(weights, heads).eval()

    phonemes, bert = fixture["input.tf.phoneme_ids"], fixture["input.tf.bert_feature"]
    prompt = fixture["input.tf.prompt_semantic"]
    logits, keys, values = prefill_session.run(
        None, {"phoneme_ids": phonemes.numpy(), "bert": bert.numpy(), "prompt": prompt.numpy()}
    )
    with torch.no_grad():
        t_logits, t_keys, t_values = torch_prefill(phonemes, bert, prompt)
    np.testing.assert_allclose(logits, t_logits.numpy(), **logits_tolerance)
    np.testing.assert_allclose(keys, t_keys.numpy(), **logits_tolerance)

    generated = []
    position = prompt.shape[1]
    for s in range(fixture["output.greedy.new_ids"].shape[1]):
        masked = logits[0].copy()
        if s < EOS_BLOCKED_STEPS:
            masked[EOS] = -np.inf
        token = int(np.argmax(masked))
        generated.append(token)
        feed = {
            "token": np.array([[token]], dtype=np.int64),
            "position": np.array([position], dtype=np.int64),
            "k_cache_in": keys,
            "v_cache_in": values,
        }
        logits, keys, values = step_session.run(None, feed)
        with torch.no_grad():
            t_logits, t_keys, t_values = torch_step(torch.tensor([[token]]), torch.tensor([position]), t_keys, t_values)
        np.testing.assert_allclose(logits, t_logits.numpy(), **logits_tolerance)
        position += 1
    assert generated == fixture["output.greedy.new_ids"][0].tolist()


@pytest.mark.slow  # 36 s on 2 loaded cores (ONNX export of the SoVITS decoder)
def test_sovits_decoder_onnx_matches_reference_wav(ref_dir: Path, tmp_path: Path) -> None:
    """Tolerance: the fixture's recommended one for ``output.decode.wav`` (vendored: atol 1e-5, peak ≈ 0.04)."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install -e .[dev])")
    import json

    from gpt_sovits_train.interchange.gpt_sovits_v2 import POSTERIOR_ENCODER_PREFIX, load_weights_strict
    from gpt_sovits_train.interchange.onnx import export_sovits_decoder_onnx

    tensors = load_file(str(ref_dir / "tiny_sovits.safetensors"))
    meta = json.loads((ref_dir / "tiny_sovits.json").read_text())
    config, tolerance = meta["config"], meta["recommended_tolerances"]["output.decode.wav"]
    from gpt_sovits_train.inference.loading import sovits_network_from_v2_config

    network = sovits_network_from_v2_config(config)
    weights = {k[7:]: v for k, v in tensors.items() if k.startswith("weight.")}
    load_weights_strict(network, weights, ignore_prefixes=(POSTERIOR_ENCODER_PREFIX,))
    codes, text, spec = (
        tensors["output.latent.codes"],
        tensors["input.decode.text"],
        tensors["output.decode.refer_spec"],
    )
    path = export_sovits_decoder_onnx(network, tmp_path / "decode.onnx", codes.shape[2], text.shape[1], spec.shape[2])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wav = session.run(None, {"codes": codes.numpy(), "text": text.numpy(), "refer_spec": spec.numpy()})[0]
    np.testing.assert_allclose(
        wav, tensors["output.decode.wav"].numpy(), atol=tolerance["atol"], rtol=tolerance["rtol"]
    )


def test_istft_head_is_rejected_with_a_clear_message(tmp_path: Path) -> None:
    """The iSTFT head ends in ``torch.istft``, which torch.onnx cannot export: say so before tracing anything."""
    import warnings

    from gpt_sovits_train.interchange.onnx import export_sovits_decoder_onnx
    from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = SoVITSGenerator(
            segment_size=8,
            inter_channels=16,
            filter_channels=64,
            n_layers=2,
            upsample_initial_channel=32,
            posterior_layers=4,
            flow_layers=2,
            n_flows=2,
            decoder="istft",
        )
    with pytest.raises(ValueError, match="'istft' cannot be exported to ONNX"):
        export_sovits_decoder_onnx(network, tmp_path / "decode.onnx")
    assert not (tmp_path / "decode.onnx").exists()

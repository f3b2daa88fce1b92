"""End-to-end synthesis with tiny models: the tiny reference GPT/SoVITS weights loaded from v2 files, random-init
HuBERT/BERT/ECAPA. Produces a wav carrying the AI-generated metadata and prints the RTF per stage.

Needs ``models.sovits.synthesizer.SoVITSGenerator``; skipped with that reason until the module provides it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits_train.audio.ai_metadata import is_marked_ai_generated, read_ai_metadata
from gpt_sovits_train.constants import SAMPLES_PER_TOKEN
from gpt_sovits_train.inference.demo import build_tiny_synthesizer
from gpt_sovits_train.inference.factory import cached_token_stream_fn
from gpt_sovits_train.inference.streaming import StreamingSynthesizer, first_chunk_latency
from gpt_sovits_train.inference.synthesizer import Reference, SamplingSettings, Synthesizer


def _sovits_class():
    from gpt_sovits_train.models.sovits.synthesizer import SoVITSGenerator

    return SoVITSGenerator


@pytest.fixture(scope="module")
def tiny_synthesizer(ref_dir: Path, random_feature_models, tmp_path_factory) -> Synthesizer:
    _sovits_class()
    return build_tiny_synthesizer(ref_dir, random_feature_models, tmp_path_factory.mktemp("v2files"))


@pytest.fixture(scope="module")
def reference_clip(tmp_path_factory) -> Path:
    rate = 32000
    t = np.arange(int(rate * 3.2)) / rate
    wav = 0.2 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    sf.write(path, wav.astype(np.float32), rate)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("transcript", ["Hello there, this is a test.", None], ids=["prompted", "reference_free"])
def test_synthesize_writes_marked_wav(tiny_synthesizer, reference_clip, transcript, tmp_path: Path) -> None:
    settings = SamplingSettings(top_k=5, max_seconds=2.0, seed=1)
    reference = Reference(reference_clip, transcript, "en")
    out = tmp_path / "out.wav"
    progress = []  # gst-synthesize prints these: one line per sentence on long texts
    result = tiny_synthesizer.synthesize(
        "Good morning. 你好世界。",
        "auto",
        reference,
        settings,
        output=out,
        on_sentence=lambda *report: progress.append(report),
    )
    print(result.report())
    assert [(i, n) for i, n, *_ in progress] == [(1, 2), (2, 2)]
    assert [tokens for *_, tokens, _ in progress] == [int(t.numel()) for t in result.semantic_tokens]
    assert out.is_file() and is_marked_ai_generated(out)
    assert "tiny-demo-voice" in read_ai_metadata(out)["comment"]
    data, rate = sf.read(out)
    assert rate == 32000 and len(data) == result.wav.numel() and len(result.sentences) == 2
    assert {"frontend", "gpt", "sovits"} <= set(result.stage_seconds) and result.rtf > 0
    assert np.abs(data).max() > 0


@pytest.mark.slow
def test_streaming_yields_chunks_close_to_offline(tiny_synthesizer, reference_clip) -> None:
    """Same seed, greedy tokens, no noise: the streamed chunks joined are the offline waveform, sample for sample,
    up to a bounded difference. Exact equality is impossible by design: each chunk is decoded by SoVITS with only
    ``context_tokens`` earlier tokens and none of the later ones, and the decoder's text/semantic attention and
    non-causal convolutions see the whole window, so every sample moves a little; the seams are cross-faded over
    640 samples. Measured on the tiny fixture (x86 CPU): relative L2 error 0.020, largest sample error 3.4 % of
    the offline peak. Without the cross-fade the seams alone reach 70 % of the peak, and the same audio shifted
    by one token (1280 samples) is 0.25 off, so the bounds below catch a misplaced, dropped or repeated piece."""
    settings = SamplingSettings(top_k=1, max_seconds=2.0, noise_scale=0.0, seed=0)
    reference = tiny_synthesizer.prepare_reference(Reference(reference_clip, "Hello there.", "en"))
    decoder = tiny_synthesizer.generate.decoder
    streamer = StreamingSynthesizer(
        tiny_synthesizer, cached_token_stream_fn(decoder, 4, 8), chunk_tokens_count=8, context_tokens=8
    )
    chunks = list(streamer.stream("Good morning everyone.", "en", reference, settings))
    assert len(chunks) >= 3 and chunks[-1].final and not any(c.final for c in chunks[:-1])
    assert [c.index for c in chunks] == list(range(len(chunks)))
    latency, wav = first_chunk_latency(iter(chunks))
    offline = tiny_synthesizer.synthesize("Good morning everyone.", "en", reference, settings).wav
    print(f"first chunk after {latency:.3f} s")
    assert latency > 0
    assert wav.numel() == offline.numel()  # same tokens, same trailing pause: not one sample more or less
    peak = float(offline.abs().max())
    assert peak > 0
    error = wav - offline
    relative = float(error.norm() / offline.norm())
    print(f"relative L2 {relative:.4f}, worst sample {float(error.abs().max()) / peak:.4f} of the peak")
    assert relative < 0.06
    assert float(error.abs().max()) < 0.12 * peak
    shifted = float((wav - torch.roll(offline, SAMPLES_PER_TOKEN)).norm() / offline.norm())
    assert shifted > 3 * relative  # the bound above is far below what one token of misalignment costs


def test_gpt_precision_setting_reaches_the_decoder(ref_dir: Path, tmp_path: Path) -> None:
    """``gpt.precision=bf16-weights`` from the synthesize config builds a float32 decoder whose per-token step
    reads bf16 matrices and decodes the v2 file's weights (closeness to float32 is tested in test_kv_cache.py)."""
    from gpt_sovits_train.inference.demo import write_tiny_v2_files
    from gpt_sovits_train.inference.factory import build_gpt_generate

    checkpoint = write_tiny_v2_files(ref_dir, tmp_path)["gpt"]
    settings = SamplingSettings(top_k=1, max_seconds=0.8, seed=0)
    phones = torch.randint(1, 300, (1, 9), generator=torch.Generator().manual_seed(0))
    bert, prompt = torch.zeros(1, 1024, 9), torch.randint(0, 100, (1, 6))
    tokens = {}
    for precision, prepack in (("fp32", True), ("fp32", False), ("bf16-weights", True)):
        config = {"checkpoint": str(checkpoint), "precision": precision, "prepack": prepack}
        generate = build_gpt_generate(config, torch.device("cpu"))
        decoder = generate.decoder.decoder
        assert decoder.model.ar_predict_layer.weight.dtype == torch.float32
        assert decoder.matrices.dtype == (torch.bfloat16 if precision == "bf16-weights" else None)
        assert decoder.matrices.prepack is prepack
        tokens[(precision, prepack)] = generate(phones, bert, prompt, settings)
    assert torch.equal(tokens[("fp32", True)], tokens[("fp32", False)])  # packing changes no token
    for new in tokens.values():
        assert new.dim() == 1 and 0 < new.numel() <= 21 and int(new.max()) < 1024  # about 0.8 s at 25 Hz, no EOS

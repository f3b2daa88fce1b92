"""Score synthesized speech: intelligibility (CER/WER via an ASR model), speaker similarity, speed and
model-free signal measures, collected into one table (CSV, JSON, W&B).

The scoring parts take plain waveforms so they can judge any audio (our synthesizer's output, another system's
files, ground truth for a ceiling). :func:`evaluate_pairs` runs the synthesizer over (text, reference) pairs first.
"""

from __future__ import annotations

import csv
import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gpt_sovits_train.audio.io import load_mono, resample
from gpt_sovits_train.constants import SPEAKER_SAMPLE_RATE

CHARACTER_LANGUAGES = {"zh", "ja", "yue", "ko"}  # scored per character: words are not space-separated


@dataclass
class EvalItem:
    """One evaluation case: what to say, in which voice (reference clip + transcript)."""

    key: str
    text: str
    language: str
    reference_audio: str
    reference_text: str | None = None
    reference_language: str | None = None
    speaker_audio: str | None = None


@dataclass
class EvalRow:
    """One result row; every field is a scalar so the table exports to CSV/JSON/W&B unchanged."""

    key: str
    text: str
    hypothesis: str = ""
    cer: float = float("nan")
    wer: float = float("nan")
    speaker_similarity: float = float("nan")
    rtf: float = float("nan")
    duration_s: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)

    def flat(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(row.pop("extras"))
        return row


def normalize_for_scoring(text: str) -> str:
    """Lower-case, NFKC, punctuation removed, whitespace collapsed: ASR output has no punctuation to compare."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def text_error_rates(hypothesis: str, reference: str, language: str) -> dict[str, float]:
    """CER and WER with ``jiwer``; for character languages WER is computed over characters (= CER)."""
    import jiwer

    ref = normalize_for_scoring(reference)
    hyp = normalize_for_scoring(hypothesis)
    if not ref:
        raise ValueError("the reference text is empty after normalization; nothing to score against")
    cer = float(jiwer.cer(ref.replace(" ", ""), hyp.replace(" ", "") or " "))
    if language in CHARACTER_LANGUAGES:
        return {"cer": cer, "wer": cer}
    return {"cer": cer, "wer": float(jiwer.wer(ref, hyp or " "))}


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.reshape(1, -1).float(), b.reshape(1, -1).float()).item())


def speaker_similarity(
    encoder: Callable[[torch.Tensor], torch.Tensor], wav_a, rate_a: int, wav_b, rate_b: int
) -> float:
    """Cosine of the speaker embeddings (ECAPA by default) of two signals, each resampled to 16 kHz."""
    emb_a = encoder(resample(torch.as_tensor(wav_a).reshape(-1), rate_a, SPEAKER_SAMPLE_RATE))
    emb_b = encoder(resample(torch.as_tensor(wav_b).reshape(-1), rate_b, SPEAKER_SAMPLE_RATE))
    return cosine_similarity(emb_a, emb_b)


def objective_measures(wav: np.ndarray | torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Model-free measures that flag broken output: level, clipping, silence share, spectral flatness."""
    x = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
    if x.numel() == 0:
        raise ValueError("empty waveform")
    rms = float(x.pow(2).mean().sqrt())
    frame = max(1, sample_rate // 100)  # 10 ms frames
    frames = x[: x.numel() // frame * frame].reshape(-1, frame) if x.numel() >= frame else x.reshape(1, -1)
    frame_db = 20 * torch.log10(frames.pow(2).mean(dim=1).sqrt() + 1e-9)
    spectrum = torch.fft.rfft(x).abs().pow(2) + 1e-12
    flatness = float(torch.exp(spectrum.log().mean()) / spectrum.mean())
    return {
        "rms_dbfs": 20 * float(np.log10(rms + 1e-9)),
        "peak": float(x.abs().max()),
        "clipping_ratio": float((x.abs() >= 0.999).float().mean()),
        "silence_ratio": float((frame_db < -50).float().mean()),
        "spectral_flatness": flatness,
    }


def score_audio(
    item: EvalItem,
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    asr: Callable[[np.ndarray, int], Any] | None = None,
    speaker_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EvalRow:
    """Score one waveform for ``item``: ASR transcript + CER/WER, similarity to the reference voice, signal stats."""
    array = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
    row = EvalRow(key=item.key, text=item.text, duration_s=array.numel() / sample_rate)
    if asr is not None:
        result = asr(array.numpy(), sample_rate)
        row.hypothesis = getattr(result, "text", result if isinstance(result, str) else str(result))
        rates = text_error_rates(row.hypothesis, item.text, item.language)
        row.cer, row.wer = rates["cer"], rates["wer"]
    if speaker_encoder is not None:
        voice = load_mono(item.speaker_audio or item.reference_audio, SPEAKER_SAMPLE_RATE)
        row.speaker_similarity = speaker_similarity(speaker_encoder, array, sample_rate, voice, SPEAKER_SAMPLE_RATE)
    row.extras = objective_measures(array, sample_rate)
    return row


def evaluate_pairs(
    items: Sequence[EvalItem],
    synthesize: Callable[[EvalItem], tuple[torch.Tensor, int]],
    asr: Callable[[np.ndarray, int], Any] | None = None,
    speaker_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
    output_dir: str | Path | None = None,
    model_name: str = "gpt_sovits_train voice",
) -> list[EvalRow]:
    """Synthesize each item, time it (RTF = compute seconds / audio seconds) and score the result."""
    rows = []
    for item in tqdm(items, desc="evaluate", unit="pair"):
        start = time.perf_counter()
        wav, rate = synthesize(item)
        elapsed = time.perf_counter() - start
        row = score_audio(item, wav, rate, asr, speaker_encoder)
        row.rtf = elapsed / max(row.duration_s, 1e-9)
        rows.append(row)
        if output_dir is not None:
            from gpt_sovits_train.audio.ai_metadata import AIMetadata, write_audio_with_ai_metadata

            write_audio_with_ai_metadata(Path(output_dir) / f"{item.key}.wav", wav, rate, AIMetadata(model=model_name))
    return rows


def summarize(rows: Iterable[EvalRow]) -> dict[str, float]:
    """Mean of every numeric column (NaNs skipped), for the run summary and the model card."""
    flat = [r.flat() for r in rows]
    summary: dict[str, float] = {}
    for name in flat[0] if flat else []:
        values = [v for v in (r[name] for r in flat) if isinstance(v, (int, float)) and not np.isnan(v)]
        if values and not isinstance(flat[0][name], str):
            summary[f"mean_{name}"] = float(np.mean(values))
    return summary


def write_tables(rows: Sequence[EvalRow], folder: str | Path) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` (rows + summary) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flat = [r.flat() for r in rows]
    csv_path, json_path = folder / "results.csv", folder / "results.json"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(flat[0]) if flat else ["key"])
        writer.writeheader()
        writer.writerows(flat)
    json_path.write_text(json.dumps({"summary": summarize(rows), "rows": flat}, ensure_ascii=False, indent=1))
    return {"csv": csv_path, "json": json_path}


def log_wandb_table(rows: Sequence[EvalRow], run: Any, name: str = "evaluation") -> None:
    """Log the rows as a ``wandb.Table`` and the means as summary values on an open W&B run."""
    import wandb

    flat = [r.flat() for r in rows]
    columns = list(flat[0]) if flat else ["key"]
    run.log({name: wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in flat])})
    for key, value in summarize(rows).items():
        run.summary[f"{name}/{key}"] = value


def read_pairs(path: str | Path) -> list[EvalItem]:
    """Read evaluation pairs from JSON lines: ``{"key","text","language","reference_audio",...}`` per line."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record: Mapping[str, Any] = json.loads(line)
        missing = {"text", "language", "reference_audio"} - set(record)
        if missing:
            raise ValueError(f"{path}:{number}: missing fields {sorted(missing)}")
        items.append(
            EvalItem(key=str(record.get("key", f"pair{number:04d}")), **{k: v for k, v in record.items() if k != "key"})
        )
    return items


def _optional_import(name: str) -> Any | None:
    """Import an optional scorer package; ``None`` only when it (or a module it needs, e.g. pkg_resources) is not
    installed. Any other failure is a broken install and raises, so it cannot turn into a quiet "unavailable"."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def available_extras() -> dict[str, bool]:
    """Which optional scorers (``pip install .[eval]``) can run here."""
    return {name: _optional_import(name) is not None for name in ("speechmos", "pocketsphinx", "resemblyzer")}


def dnsmos_scores(wav: np.ndarray | torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Non-intrusive quality estimate (DNSMOS P.835/P.808, ONNX models bundled in ``speechmos``)."""
    speechmos = _optional_import("speechmos.dnsmos")
    if speechmos is None:
        raise RuntimeError("speechmos is not installed: pip install speechmos")
    audio = resample(torch.as_tensor(wav, dtype=torch.float32).reshape(-1), sample_rate, SPEAKER_SAMPLE_RATE).numpy()
    scores = speechmos.run(np.clip(audio, -1, 1), SPEAKER_SAMPLE_RATE)
    return {f"dnsmos_{k}": float(v) for k, v in scores.items()}


def pocketsphinx_transcript(wav: np.ndarray | torch.Tensor, sample_rate: int) -> str:
    """English transcript from pocketsphinx's bundled US-English model (a weights-free-download ASR baseline)."""
    pocketsphinx = _optional_import("pocketsphinx")
    if pocketsphinx is None:
        raise RuntimeError("pocketsphinx is not installed: pip install pocketsphinx")
    audio = resample(torch.as_tensor(wav, dtype=torch.float32).reshape(-1), sample_rate, SPEAKER_SAMPLE_RATE)
    pcm = (audio.clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes()
    decoder = pocketsphinx.Decoder(samprate=SPEAKER_SAMPLE_RATE, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def resemblyzer_similarity(wav_a, rate_a: int, wav_b, rate_b: int) -> float:
    """Speaker similarity with Resemblyzer's GE2E encoder (weights ship inside the package)."""
    resemblyzer = _optional_import("resemblyzer")
    if resemblyzer is None:
        raise RuntimeError("resemblyzer is not installed or not importable: pip install resemblyzer setuptools")
    encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
    embeddings = []
    for wav, rate in ((wav_a, rate_a), (wav_b, rate_b)):
        target = SPEAKER_SAMPLE_RATE
        audio = resample(torch.as_tensor(wav, dtype=torch.float32).reshape(-1), rate, target).numpy()
        embeddings.append(torch.from_numpy(encoder.embed_utterance(resemblyzer.preprocess_wav(audio, target))))
    return cosine_similarity(embeddings[0], embeddings[1])

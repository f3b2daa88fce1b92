"""The quality gate a fast inference path must pass before it may be picked: measured, never assumed.

Speed-ups from lower precision (bf16 weights, int8/4-bit quantized matrices, bf16 convolutions) change numbers;
whether they change *results* depends on the weights. So every fast path is compared with the exact float32 path
on fixed inputs, and the gate's figures travel with the choice (logged by ``runtime=auto``, written to the bench
JSON):

* GPT, teacher-forced: both paths read the same token sequence (the exact path's greedy decode); at every step the
  argmax of their next-token logits must agree for ≥ 99 % of steps;
* GPT, free-running: greedy decodes from each prompt must be identical for ≥ 95 % of token positions (a divergence
  counts every later position as different — what a listener would hear);
* SoVITS: the waveform decoded from the same codes must be within 30 dB SNR of the float32 one (noise scale 0, so
  the comparison is deterministic); the log-mel L1 distance is reported alongside.

The inputs are seeded random phonemes, BERT features and prompts: the gate checks the arithmetic of an engine on a
given set of weights, so it needs no corpus. ``GateInputs.full()`` is the benchmark's full-size set,
``GateInputs.tiny()`` the tests'.

GPT engines are driven through the one decode-backend contract (``models/gpt/decoding.DecodeBackend``: prefill,
then one step per token), the same one the decode loop uses: the gate compares exactly what decoding would run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from gpt_sovits_train.models.gpt.decoding import DecodeBackend

MIN_TOP1 = 0.99
MIN_GREEDY = 0.95
MIN_SNR_DB = 30.0


@dataclass(frozen=True)
class GateInputs:
    """Seeded GPT prompts (phonemes, BERT features, semantic prompt) and how many tokens each decodes."""

    prompts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    tokens: int

    @classmethod
    def seeded(cls, count: int, phones: int, prompt_len: int, tokens: int, seed: int = 0) -> GateInputs:
        generator = torch.Generator().manual_seed(seed)
        prompts = [
            (
                torch.randint(1, 732, (1, phones), generator=generator),
                torch.randn(1, 1024, phones, generator=generator),
                torch.randint(0, 1024, (1, prompt_len), generator=generator),
            )
            for _ in range(count)
        ]
        return cls(prompts, tokens)

    @classmethod
    def full(cls) -> GateInputs:
        """Benchmark size: 4 prompts of 60 phonemes + 75 prompt tokens, 100 tokens each (400 compared steps)."""
        return cls.seeded(4, 60, 75, 100)

    @classmethod
    def tiny(cls) -> GateInputs:
        """Test size: 2 prompts of 12 phonemes + 10 prompt tokens, 24 tokens each (48 steps: the 99 % threshold
        then allows no disagreement at all)."""
        return cls.seeded(2, 12, 10, 24)


@dataclass
class GateResult:
    """Figures of one gate run and whether they pass; ``as_dict`` is what goes into logs and bench JSON."""

    metrics: dict[str, float]
    thresholds: dict[str, float]
    passed: bool
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        figures = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"{'passed' if self.passed else 'FAILED (' + '; '.join(self.failures) + ')'}: {figures}"


def prefill_prompt(backend: DecodeBackend, phones: torch.Tensor, bert: torch.Tensor, prompt: torch.Tensor,
                   room: int) -> torch.Tensor:
    """Float32 logits ``[V]`` of the first new token of one prompt, with cache room for ``room`` more tokens."""
    p, s = phones.shape[1], prompt.shape[1]
    return backend.prefill(phones, torch.tensor([p]), bert, prompt, torch.tensor([s]), p + s + room).float()[0]


@torch.inference_mode()
def _greedy(backend: DecodeBackend, phones, bert, prompt, tokens: int, forced: list[int] | None = None):
    """Argmax tokens of ``tokens`` steps; with ``forced`` the inputs are those tokens instead of the argmaxes.
    Returns (argmax per step, logits per step)."""
    logits = prefill_prompt(backend, phones, bert, prompt, tokens)
    chosen, all_logits = [], []
    position = prompt.shape[1]
    for i in range(tokens):
        all_logits.append(logits)
        chosen.append(int(logits.argmax()))
        if i == tokens - 1:
            break
        feed = forced[i] if forced is not None else chosen[-1]
        logits = backend.step(torch.tensor([feed]), torch.tensor([position])).float()[0]
        position += 1
    return chosen, all_logits


def gpt_gate(exact: DecodeBackend, candidate: DecodeBackend, inputs: GateInputs) -> GateResult:
    """Teacher-forced top-1 agreement and free-running greedy identity of ``candidate`` against ``exact``."""
    agree = identical = total = 0
    max_diff = 0.0
    for phones, bert, prompt in inputs.prompts:
        reference, reference_logits = _greedy(exact, phones, bert, prompt, inputs.tokens)
        forced, forced_logits = _greedy(candidate, phones, bert, prompt, inputs.tokens, forced=reference)
        free, _ = _greedy(candidate, phones, bert, prompt, inputs.tokens)
        agree += sum(a == b for a, b in zip(reference, forced, strict=True))
        identical += sum(a == b for a, b in zip(reference, free, strict=True))
        total += inputs.tokens
        for a, b in zip(reference_logits, forced_logits, strict=True):
            max_diff = max(max_diff, float((a - b).abs().max()))
    metrics = {
        "top1_agreement": agree / total,
        "greedy_identical": identical / total,
        "max_abs_logit_diff": max_diff,
        "compared_steps": float(total),
    }
    thresholds = {"top1_agreement": MIN_TOP1, "greedy_identical": MIN_GREEDY}
    return _judge(metrics, thresholds)


def _judge(metrics: dict[str, float], minimums: dict[str, float]) -> GateResult:
    failures = [f"{name} {metrics[name]:.4g} < {low}" for name, low in minimums.items() if not metrics[name] >= low]
    return GateResult(metrics, minimums, not failures, failures)


def snr_db(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """``10·log10(Σ ref² / Σ (ref - cand)²)`` over the common length (inf when identical)."""
    n = min(reference.numel(), candidate.numel())
    ref, cand = reference.reshape(-1)[:n].double(), candidate.reshape(-1)[:n].double()
    noise = float(((ref - cand) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((ref**2).sum()) / noise)


def log_mel_distance(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Mean absolute difference of the v2 log-mel spectrograms (the training loss's mel, 128 bands)."""
    from gpt_sovits_train.audio.spectrogram import mel_spectrogram

    n = min(reference.numel(), candidate.numel())
    mels = [mel_spectrogram(w.reshape(1, -1)[:, :n].float()) for w in (reference, candidate)]
    return float((mels[0] - mels[1]).abs().mean())


SoVITSDecode = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sovits_inputs(tokens: int, phones: int, spec_frames: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """Seeded (codes [1,1,T], phones [1,P], reference spectrogram [1,1025,F]) triples, two of them."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randint(0, 1024, (1, 1, tokens), generator=generator),
            torch.randint(1, 732, (1, phones), generator=generator),
            torch.rand(1, 1025, spec_frames, generator=generator),
        )
        for _ in range(2)
    ]


@torch.inference_mode()
def sovits_gate(exact: SoVITSDecode, candidate: SoVITSDecode, inputs: list[tuple[torch.Tensor, ...]]) -> GateResult:
    """Waveform SNR (worst over ``inputs``) and mean log-mel distance of ``candidate`` against ``exact``; each
    is a ``decode(codes, phones, refer_spec) -> wav`` at noise scale 0."""
    snrs, mels = [], []
    for codes, phones, spec in inputs:
        reference = exact(codes, phones, spec).float()
        produced = candidate(codes, phones, spec).float()
        snrs.append(snr_db(reference, produced))
        mels.append(log_mel_distance(reference, produced))
    metrics = {"snr_db": min(snrs), "log_mel_l1": sum(mels) / len(mels)}
    return _judge(metrics, {"snr_db": MIN_SNR_DB})


def network_decode(network: torch.nn.Module) -> SoVITSDecode:
    """A prepared SoVITS generator's ``decode`` at noise scale 0, fed in the network's own dtype."""
    dtype = next(network.parameters()).dtype

    def decode(codes: torch.Tensor, phones: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        return network.decode(codes, phones, spec.to(dtype), noise_scale=0.0, speed=1.0)

    return decode

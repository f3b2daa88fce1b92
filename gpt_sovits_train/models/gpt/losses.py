"""Training losses for the GPT stage: summed cross-entropy, top-k accuracy, and v2's reference-free DPO term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def summed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum (not mean) of token CE, as v2 does: longer utterances weigh more. Targets ``-100`` are skipped."""
    return F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="sum", ignore_index=IGNORE)


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int, ignore: int) -> torch.Tensor:
    """Share of positions whose target is among the ``k`` best logits, skipping targets ``ignore`` and ``-100``.

    v2 logs this with ``k=3`` and ``ignore`` = EOS (torchmetrics micro accuracy); returns 0 when nothing counts.
    """
    counted = (targets != ignore) & (targets != IGNORE)
    if not bool(counted.any()):
        return logits.new_zeros(())
    best = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
    hit = (best == targets.clamp(min=0).unsqueeze(-1)).any(-1)
    return (hit & counted).sum().float() / counted.sum()


def sequence_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row sum of ``log p(target)`` ``[B]`` (positions with target ``-100`` skipped)."""
    keep = targets != IGNORE
    picked = logits.float().log_softmax(-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(-1)


def reference_free_dpo(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, beta: float = 0.2) -> torch.Tensor:
    """``mean(-log σ(β (log p(chosen) - log p(rejected))))`` (DPO with no reference model, v2's setting)."""
    return -F.logsigmoid(beta * (chosen_logps - rejected_logps)).mean()


def make_rejected_semantic(
    semantic_ids: torch.Tensor, semantic_lens: torch.Tensor, eos: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt each row into a "bad" sequence for DPO: a random span is repeated (the stutter failure mode).

    Our own construction (the reference draws a different corruption); rows stay right-padded with ``eos``.
    """
    rows = []
    for row, length in zip(semantic_ids, semantic_lens.tolist(), strict=True):
        tokens = row[:length]
        if length >= 2:
            start = int(torch.randint(0, length - 1, (1,), generator=generator))
            end = int(torch.randint(start + 1, length, (1,), generator=generator)) + 1
            tokens = torch.cat([tokens[:end], tokens[start:end], tokens[end:]])
        rows.append(tokens)
    lens = torch.tensor([len(r) for r in rows], dtype=torch.long, device=semantic_ids.device)
    out = semantic_ids.new_full((len(rows), int(lens.max())), eos)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lens

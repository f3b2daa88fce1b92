"""How the next semantic token is chosen and when decoding stops: the one set of rules.

Every decode (the KV cache, the exported graphs, ONNX Runtime) feeds raw logits to :class:`DecodeRules` through the
one loop in :mod:`~gpt_sovits_train.models.gpt.decoding`, so all backends follow these rules token for token.

:class:`SamplingOptions` defaults are the corrected behaviour; ``SamplingOptions.v2_compatible()`` turns on the
reference's habits (EOS forbidden for the first 11 steps, repetition penalty also over the prompt, stop when the
argmax of the penalized logits is EOS even if the sample is not), which the parity tests and the synthesizer use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from gpt_sovits_train.models.gpt.model import right_pad_mask


@dataclass(frozen=True)
class SamplingOptions:
    """How the next token is chosen. ``greedy=True`` takes the argmax of the processed logits (deterministic)."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    max_new_tokens: int = 1500
    greedy: bool = False
    eos_blocked_steps: int = 0  # v2: 11 (the EOS logit is dropped for the first steps)
    penalize_prompt: bool = False  # v2: True (the prompt's tokens are penalized as if generated)
    stop_on_argmax_eos: bool = False  # v2: True

    @classmethod
    def v2_compatible(cls, **overrides) -> SamplingOptions:
        """The reference ``infer_panel`` rules; its ``early_stop_num=n`` equals ``max_new_tokens=n + 1``."""
        return replace(cls(eos_blocked_steps=11, penalize_prompt=True, stop_on_argmax_eos=True), **overrides)


def penalize_logits(
    logits: torch.Tensor, seen: torch.Tensor | None, options: SamplingOptions, block_eos: bool, eos: int
) -> torch.Tensor:
    """EOS blocking and repetition penalty on ``logits`` ``[B,V]`` (float32, never in place).

    ``seen`` ``[B,V]`` (bool) marks the tokens to penalize: negative scores are multiplied by the penalty, positive
    ones divided, once per distinct token however often it occurred (as the reference's gather/scatter does).
    These are the logits v2 changes in place, so its argmax-EOS stop rule sees them (:meth:`DecodeRules.advance`).
    """
    logits = logits.float()
    if block_eos:
        logits = logits.index_fill(1, torch.tensor([eos], device=logits.device), float("-inf"))
    if seen is not None and options.repetition_penalty != 1.0:
        penalty = options.repetition_penalty
        logits = torch.where(seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)
    return logits


def filter_logits(logits: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Top-p, temperature and top-k on float32 ``logits`` ``[B,V]`` (v2's order); never in place."""
    if options.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        drop = ordered.softmax(dim=-1).cumsum(dim=-1) > options.top_p
        drop[:, 0] = False
        logits = logits.scatter(1, order, ordered.masked_fill(drop, float("-inf")))
    if options.temperature != 1.0:
        logits = logits / max(options.temperature, 1e-5)
    if options.top_k and options.top_k < logits.shape[-1]:
        pivot = logits.topk(options.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < pivot, float("-inf"))
    return logits


def process_logits(
    logits: torch.Tensor, seen: torch.Tensor | None, options: SamplingOptions, block_eos: bool, eos: int
) -> torch.Tensor:
    """:func:`penalize_logits` then :func:`filter_logits`: the distribution a token is drawn from."""
    return filter_logits(penalize_logits(logits, seen, options, block_eos, eos), options)


def choose(logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row: argmax when greedy, else a categorical draw via ``argmax(p / Exp(1))``."""
    if options.greedy:
        return logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / noise).argmax(dim=-1)


class DecodeRules:
    """Token choice and stopping for one decode, independent of how the logits are computed.

    The decode loop (:func:`~gpt_sovits_train.models.gpt.decoding.iterate`) feeds every backend's raw logits to
    :meth:`advance`, so a PyTorch decode and an ONNX Runtime decode follow the same rules token for token.
    """

    def __init__(
        self,
        options: SamplingOptions,
        eos: int,
        vocab_size: int,
        prompt: torch.Tensor,
        prompt_lens: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> None:
        self.options, self.eos, self.generator = options, eos, generator
        b = prompt.shape[0]
        self.prompt_lens = prompt_lens
        self.alive = torch.ones(b, dtype=torch.bool, device=prompt.device)
        self.generated = torch.zeros(b, dtype=torch.long, device=prompt.device)
        self.step = -1
        self.finished = False
        # One spare column takes the prompt's padding, so padding never penalizes a real token.
        seen = torch.zeros(b, vocab_size + 1, dtype=torch.bool, device=prompt.device)
        if options.penalize_prompt and prompt.shape[1]:
            seen.scatter_(1, prompt.masked_fill(right_pad_mask(prompt_lens, prompt.shape[1]), vocab_size), True)
        self.seen = seen[:, :vocab_size]

    def advance(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose this step's tokens from raw ``logits`` ``[B,V]``.

        Returns ``(tokens, appended)``: ``appended[i]`` says row *i* produced a new token this step (it was alive and
        did not stop), and ``tokens[i]`` is that token, or EOS where nothing was appended. Afterwards
        :attr:`finished` says whether every row has stopped.
        """
        options, eos = self.options, self.eos
        self.step += 1
        blocked = self.step < options.eos_blocked_steps
        penalized = penalize_logits(logits, self.seen, options, blocked, eos)
        tokens = choose(filter_logits(penalized, options), options, self.generator)
        stop = tokens == eos
        if options.stop_on_argmax_eos:
            # v2 penalizes its logits in place before testing their argmax, so the penalty counts here too.
            stop |= penalized.argmax(-1) == eos
        appended = self.alive & ~stop
        self.generated += appended
        self.alive = appended & (self.generated < options.max_new_tokens)
        tokens = torch.where(appended, tokens, eos)
        self.finished = not bool(self.alive.any())
        if not self.finished:
            self.seen.scatter_(1, tokens.unsqueeze(1), True)
        return tokens, appended

    def next_inputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the next step consumes: ``tokens`` with stopped rows fed a harmless 0, and each row's semantic
        position of its newest token (positions restart at 0 for semantic tokens and count the prompt)."""
        return torch.where(self.alive, tokens, 0), self.prompt_lens + self.generated - 1

"""The v2 stop rule in sampling mode: v2 applies the repetition penalty to its logits in place, then stops when
the argmax of those *penalized* logits is EOS (``AR/models/t2s_model.py`` with ``AR/models/utils.py``)."""

from __future__ import annotations

import torch

from gpt_sovits_train.models.gpt.sampling import DecodeRules, SamplingOptions

VOCAB, EOS, SEEN = 1025, 1024, 7


def _crafted_logits() -> torch.Tensor:
    """A prompt token leads the raw logits, EOS leads once that token is penalized (12 / 1.35 = 8.9 < 9), and every
    other code ties at the top-k pivot, so top-k 15 keeps them all and a draw rarely lands on EOS."""
    logits = torch.full((1, VOCAB), 8.0)
    logits[0, SEEN] = 12.0
    logits[0, EOS] = 9.0
    return logits


def _stops(options: SamplingOptions, seeds: int = 200) -> int:
    stopped = 0
    for seed in range(seeds):
        rules = DecodeRules(
            options, EOS, VOCAB, torch.tensor([[SEEN]]), torch.tensor([1]), torch.Generator().manual_seed(seed)
        )
        _, appended = rules.advance(_crafted_logits())
        stopped += int(not bool(appended[0]))
    return stopped


def test_v2_stops_when_the_penalized_argmax_is_eos() -> None:
    penalized = _crafted_logits()
    penalized[0, SEEN] /= 1.35
    assert int(_crafted_logits().argmax()) == SEEN and int(penalized.argmax()) == EOS  # the case is as described
    options = SamplingOptions.v2_compatible(top_k=15, eos_blocked_steps=0)
    assert _stops(options) == 200  # v2: every seed stops


def test_corrected_rules_stop_only_on_a_sampled_eos() -> None:
    # Without the v2 rule a draw from ~1000 near-tied codes rarely hits EOS.
    assert _stops(SamplingOptions(top_k=15)) < 10

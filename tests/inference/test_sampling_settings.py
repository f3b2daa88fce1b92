"""Sampling defaults live in one dataclass: ``conf/synthesize.yaml`` mirrors it, and the GPT options follow it."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import yaml

from gpt_sovits_train.inference.synthesizer import SEMANTIC_HZ, SamplingSettings
from gpt_sovits_train.models.gpt.sampling import SamplingOptions

CONF = Path(__file__).resolve().parents[2] / "conf" / "synthesize.yaml"


def test_yaml_sampling_block_mirrors_the_dataclass() -> None:
    block = yaml.safe_load(CONF.read_text())["sampling"]
    assert set(block) == {f.name for f in fields(SamplingSettings)}
    defaults = asdict(SamplingSettings())
    # The CLI pins seed 0 so a synthesized file is reproducible; the Python API leaves it to the caller (None).
    assert block.pop("seed") == 0 and defaults.pop("seed") is None
    assert block == defaults


def test_gpt_options_are_the_v2_rules_with_the_settings() -> None:
    settings = SamplingSettings(top_k=3, top_p=0.9, temperature=0.7, repetition_penalty=1.1, max_seconds=2.0)
    options = settings.gpt_options()
    assert options == SamplingOptions.v2_compatible(
        top_k=3, top_p=0.9, temperature=0.7, repetition_penalty=1.1, max_new_tokens=int(SEMANTIC_HZ * 2.0) + 1
    )
    default = SamplingSettings().gpt_options()
    assert (default.top_k, default.top_p, default.temperature, default.repetition_penalty) == (
        SamplingOptions.top_k,
        SamplingOptions.top_p,
        SamplingOptions.temperature,
        SamplingOptions.repetition_penalty,
    )

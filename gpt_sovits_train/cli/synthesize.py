"""``gst-synthesize``: compose ``conf/synthesize.yaml``, synthesize, write the file, print RTF per stage.

``voice=<bundle dir>`` (a ``gst-clone`` voice bundle) supplies the checkpoints, networks, feature models and
the reference clip + transcript; any of those keys given on the command line wins over the bundle.
Long texts (``text_file=<file>`` for those that do not fit a command line) print one progress line per sentence
(tokens, seconds of audio); ``max_text_chars`` refuses texts longer than that before any model is built (null:
no cap).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": value}`` for every leaf of a nested dict (lists are leaves)."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def explicit_keys(overrides: list[str]) -> set[str]:
    """Config keys the user set on the command line (``+``/``++``/``~`` stripped; a group override such as
    ``prepare/features@features=random_init`` counts for its package, ``features``)."""
    keys = set()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        keys.add(key.split("@", 1)[1] if "@" in key else key)
    return keys


def apply_voice_bundle(cfg: DictConfig, overrides: list[str]) -> None:
    """Fill ``cfg`` from the bundle named by ``cfg.voice``; keys in ``overrides`` (and everything under them)
    keep the command line's value."""
    from gpt_sovits_train.clone.bundle import load_bundle

    bundle = load_bundle(Path(str(cfg.voice)).expanduser())
    explicit = explicit_keys(overrides)
    values = bundle.synthesis_config(device=str(cfg.device))
    values.pop("device")
    with open_dict(cfg):
        for key, value in _leaves(values).items():
            if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in explicit):
                continue
            if key.startswith("features.") and "features" in explicit:
                continue
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)


def check_text(cfg: DictConfig) -> None:
    """Read ``text_file`` into ``text`` when given; refuse an over-long text up front with one line naming the cap
    and how to lift it."""
    if cfg.get("text_file"):
        with open_dict(cfg):
            cfg.text = Path(str(cfg.text_file)).expanduser().read_text(encoding="utf-8")
    elif OmegaConf.is_missing(cfg, "text"):
        raise ValueError("nothing to say: pass text='...' or text_file=<a UTF-8 text file>")
    limit = cfg.get("max_text_chars")
    if limit is not None and len(str(cfg.text)) > int(limit):
        raise ValueError(
            f"text has {len(str(cfg.text)):,} characters, more than max_text_chars={limit}; split it into "
            "several runs, or pass max_text_chars=null (no cap) or a larger value"
        )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="synthesize")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from gpt_sovits_train.audio.ai_metadata import AIMetadata, write_audio_with_ai_metadata
    from gpt_sovits_train.inference.factory import build_synthesizer, cached_token_stream_fn
    from gpt_sovits_train.inference.streaming import StreamingSynthesizer, first_chunk_latency
    from gpt_sovits_train.inference.synthesizer import SAMPLE_RATE, Reference, SamplingSettings

    def progress(index: int, total: int, sentence: str, tokens: int, seconds: float) -> None:
        if total > 1:
            print(f"sentence {index}/{total}: {tokens} tokens, {seconds:.2f} s of audio", file=sys.stderr, flush=True)

    try:
        if cfg.get("voice"):
            apply_voice_bundle(cfg, list(HydraConfig.get().overrides.task))
        check_text(cfg)
        settings = SamplingSettings(**OmegaConf.to_container(cfg.sampling, resolve=True))
        reference = Reference(**OmegaConf.to_container(cfg.reference, resolve=True))
        synthesizer = build_synthesizer(cfg)
        if cfg.streaming:
            decoder = getattr(synthesizer.generate, "decoder", None)  # cached backend: true token streaming
            token_stream = cached_token_stream_fn(decoder) if decoder is not None else None
            streamer = StreamingSynthesizer(synthesizer, token_stream=token_stream)
            chunks = streamer.stream(cfg.text, cfg.language, reference, settings)
            latency, wav = first_chunk_latency(chunks)
            write_audio_with_ai_metadata(cfg.output, wav, SAMPLE_RATE, AIMetadata(model=synthesizer.model_name))
            print(f"wrote {cfg.output}: {wav.numel() / SAMPLE_RATE:.2f} s, first chunk after {latency:.3f} s")
            return
        result = synthesizer.synthesize(
            cfg.text, cfg.language, reference, settings, output=cfg.output, on_sentence=progress
        )
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {result.path}: {result.report()}")


if __name__ == "__main__":
    main()

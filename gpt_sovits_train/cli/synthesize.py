"""``gst-synthesize``: compose ``conf/synthesize.yaml``, synthesize, write the file, print RTF per stage."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="synthesize")
def main(cfg: DictConfig) -> None:
    from gpt_sovits_train.audio.ai_metadata import AIMetadata, write_audio_with_ai_metadata
    from gpt_sovits_train.inference.factory import build_synthesizer, cached_token_stream_fn
    from gpt_sovits_train.inference.streaming import StreamingSynthesizer, first_chunk_latency
    from gpt_sovits_train.inference.synthesizer import SAMPLE_RATE, Reference, SamplingSettings

    settings = SamplingSettings(**OmegaConf.to_container(cfg.sampling, resolve=True))
    reference = Reference(**OmegaConf.to_container(cfg.reference, resolve=True))
    try:
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
        result = synthesizer.synthesize(cfg.text, cfg.language, reference, settings, output=cfg.output)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {result.path}: {result.report()}")


if __name__ == "__main__":
    main()

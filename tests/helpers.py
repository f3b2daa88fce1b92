"""Helpers shared by several test folders, written once: Hydra composition of ``gst-train``'s config, the demo
corpus prepared into shards, and a tiny random-init wav2vec2 CTC ASR model. Fixtures stay in the conftest files;
these are plain functions."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

#: Lines for the terminal summary, by section, gathered in the process that prints it (tests/conftest.py).
SUMMARY: dict[str, list] = {}


def add_to_summary(item, section: str, payload) -> None:
    """Attach a terminal-summary entry to a test: it travels with the test's report, so under pytest-xdist it
    reaches the controlling process, which prints it (a module-level list in a worker would never be seen)."""
    item.user_properties.append(("gst_summary", (section, payload)))


REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
DEMO = REPO / "data" / "demo"


def compose_train(overrides: list[str], run_dir: Path, config_name: str = "train") -> DictConfig:
    """The config ``gst-train`` would build, with ``${hydra:}`` values resolvable and pointing at ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=[f"hydra.run.dir={run_dir}", *overrides], return_hydra_config=True)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def stages(*names: str) -> list[str]:
    """The training stages a test is parametrized over (both when none is named)."""
    return list(names or ("gpt", "sovits"))


def demo_subset(target: Path, per_speaker: int) -> Path:
    """A ``.list`` of ``per_speaker`` demo lines per speaker, audio paths made absolute: the first English lines,
    plus the shortest Mandarin and the shortest mixed-language line once ``per_speaker`` >= 3 (every language the
    front end handles, while the clips stay as short as the English ones)."""
    rows = [line.split("|") for line in (DEMO / "demo.list").read_text(encoding="utf-8").splitlines()]
    rows = [fields for fields in rows if len(fields) >= 4]
    chosen = []
    for speaker in dict.fromkeys(fields[1] for fields in rows):
        own = [fields for fields in rows if fields[1] == speaker]
        english = [fields for fields in own if fields[2] == "en"]
        chinese = [fields for fields in own if fields[2] == "zh"]
        mixed = [fields for fields in chinese if any(c.isascii() and c.isalpha() for c in fields[3])]
        pure = [fields for fields in chinese if fields not in mixed]
        others = [min(group, key=lambda fields: len(fields[3])) for group in (pure, mixed)] if per_speaker >= 3 else []
        chosen += english[: per_speaker - len(others)] + others
    lines = ["|".join([str((DEMO / fields[0]).resolve()), *fields[1:]]) for fields in chosen]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def prepare_demo_shards(root: Path, per_speaker: int, chunk: int, with_encodec: bool = False) -> Path:
    """Run the real prepare on :func:`demo_subset` with random-init extractors (EnCodec too when ``with_encodec``),
    one validation utterance per speaker, ``chunk`` utterances per shard, into ``root/shards``; returns it."""
    from gpt_sovits_train.data.prepare import prepare
    from gpt_sovits_train.features.random_init import make_all

    make_all(root / "random_models", seed=0, with_encodec=with_encodec)
    corpus = demo_subset(root / "subset.list", per_speaker)
    features = "random_init_encodec" if with_encodec else "random_init"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("prepare", overrides=[
            f"prepare/features@features={features}", f"random_models={root / 'random_models'}",
            f"input.path={corpus}", f"output_dir={root / 'shards'}", "progress=false",
            "split.val_min_per_speaker=1", f"shards.utterances_per_chunk={chunk}",
        ])
    GlobalHydra.instance().clear()
    prepare(cfg)
    return root / "shards"


def build_random_ctc_asr(folder: Path) -> Path:
    """Save a tiny random-initialized wav2vec2 CTC model + tokenizer + feature extractor to ``folder``.

    The same classes as a real wav2vec2 ASR checkpoint, so ``TransformersASR`` and the transformers ASR pipeline
    run exactly the code path a user's model would; its output text is meaningless but genuinely produced.
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz'")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2} | {ch: i + 3 for i, ch in enumerate(letters)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
    )
    Wav2Vec2ForCTC(config).eval().save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder

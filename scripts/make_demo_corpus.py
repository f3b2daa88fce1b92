#!/usr/bin/env python
"""Rebuild the bundled demo corpus in ``data/demo/`` with espeak-ng.

Why synthetic speech: the project needs real speech audio that anyone may redistribute, in two
clearly different voices, in English and Mandarin, small enough to commit. espeak-ng (GPL-3,
Debian package ``espeak-ng``) produces exactly that; its output audio is not covered by the GPL.
The texts below were written for this project and are released under CC0 (see ``data/demo/LICENSE``).

The demo itself never runs this script: the FLAC files are committed. To rebuild them::

    apt-get update && apt-get install -y espeak-ng
    python scripts/make_demo_corpus.py --out data/demo

Each text is read by both speakers. Speaker ``ava`` uses the ``+f2`` variant with a high pitch and a slow
rate; speaker ``bo`` uses ``+m3`` with a low pitch and a faster rate. espeak-ng renders at 22.05 kHz; the
audio is resampled to 32 kHz mono (``torchaudio.functional.resample``) and written as 16-bit FLAC.
Mixed Chinese/English lines are read with the Mandarin voice, which speaks Latin words as English.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

TARGET_RATE = 32000


@dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker: a voice variant per language plus pitch (0-99) and rate (words/min)."""

    name: str
    english_voice: str
    mandarin_voice: str
    pitch: int
    words_per_minute: int


VOICES = (
    Voice("ava", "en-us+f2", "cmn+f2", pitch=62, words_per_minute=150),
    Voice("bo", "en-us+m3", "cmn+m3", pitch=32, words_per_minute=172),
)

# (language code as GPT-SoVITS v2 writes it, text). Mixed lines are labelled "zh" as v2 labels them.
TEXTS: tuple[tuple[str, str], ...] = (
    ("en", "The morning train to the coast leaves at seven fifteen."),
    ("en", "Please put the blue notebook back on the second shelf."),
    ("en", "A quiet river runs behind the old stone mill."),
    ("en", "We counted 42 boats in the harbor before noon."),
    ("en", "My sister planted tomatoes, beans and a row of sunflowers."),
    ("en", "The meeting moved to room 305 on Thursday afternoon."),
    ("en", "Fresh bread smells wonderful on a cold winter evening."),
    ("en", "He paid 19 dollars and 99 cents for the lamp."),
    ("en", "Turn left at the bakery, then walk straight for two blocks."),
    ("en", "Clouds gathered over the hills, and the wind grew stronger."),
    ("en", "Our small team finished the project three days early."),
    ("en", "The library opens at nine and closes at half past six."),
    ("en", "She read the letter twice before answering it."),
    ("zh", "今天天气很好，我们一起去公园散步吧。"),
    ("zh", "这本书我已经看了三遍，还是觉得很有意思。"),
    ("zh", "请把窗户打开，房间里有点闷。"),
    ("zh", "他每天早上六点起床，然后去跑步。"),
    ("zh", "火车站离这里大概有两公里远。"),
    ("zh", "我们班一共有32个学生。"),
    ("zh", "妈妈做的饺子特别好吃。"),
    ("zh", "这个月的电费是128元。"),
    ("zh", "明天下午三点在图书馆见面。"),
    ("zh", "春天来了，树上开满了白色的花。"),
    ("zh", "他把钥匙忘在办公室里了。"),
    ("zh", "这条路晚上很安静，只有几盏路灯。"),
    ("zh", "我想学习做菜，尤其是四川菜。"),
    ("zh", "我昨天买了一台新的laptop，速度非常快。"),
    ("zh", "这个project下周五必须完成。"),
    ("zh", "请用email把文件发给我。"),
    ("zh", "她在Google工作了5年。"),
    ("zh", "我们晚上去看一场movie怎么样？"),
    ("zh", "会议改到了room 12，别走错了。"),
    ("zh", "他的iPhone电量只剩下百分之20了。"),
    ("zh", "周末我们一起去打basketball吧。"),
    ("zh", "这个app每天有1000多人使用。"),
    ("zh", "老师说今天的homework不多。"),
)


def synthesize(text: str, voice: str, pitch: int, words_per_minute: int, workdir: Path) -> tuple[np.ndarray, int]:
    """Run espeak-ng once and return (mono float32 samples, sample rate)."""
    wav_path = workdir / "utterance.wav"
    command = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(words_per_minute), "-w", str(wav_path), text]
    subprocess.run(command, check=True, capture_output=True)
    samples, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def to_target_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    resampled = AF.resample(torch.from_numpy(samples), orig_freq=rate, new_freq=TARGET_RATE).numpy()
    peak = float(np.abs(resampled).max())
    if peak > 0.97:  # resampling can overshoot slightly; keep it below full scale so nothing clips
        resampled *= 0.97 / peak
    return resampled


def build(out_dir: Path) -> None:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found: run `apt-get update && apt-get install -y espeak-ng` first")
    lines = []
    total_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for voice in VOICES:
            (out_dir / voice.name).mkdir(parents=True, exist_ok=True)
            for index, (language, text) in enumerate(TEXTS):
                espeak_voice = voice.english_voice if language == "en" else voice.mandarin_voice
                samples, rate = synthesize(text, espeak_voice, voice.pitch, voice.words_per_minute, workdir)
                audio = to_target_rate(samples, rate)
                relative = f"{voice.name}/{voice.name}_{index:03d}.flac"
                sf.write(out_dir / relative, audio, TARGET_RATE, subtype="PCM_16", format="FLAC")
                total_seconds += len(audio) / TARGET_RATE
                lines.append(f"{relative}|{voice.name}|{language}|{text}")
    (out_dir / "demo.list").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} utterances, {total_seconds:.1f} s of audio, to {out_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "demo")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()

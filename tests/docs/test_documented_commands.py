"""Every documented command runs: README.md, docs/*.md and the published model card's usage line.

The commands run in document order in one scratch workspace, as a reader following the docs would: the README's
``gst-prepare`` writes ``data/shards/my_voice`` that its ``gst-train`` commands read, whose checkpoints its
``gst-synthesize`` and ``gst-publish`` commands use. The workspace holds the files the docs name
(``my_voice.list``, ``recordings/alice.wav``, ``ref.wav``, ``/models/...`` as ``<ws>/models/...``: random-init
feature models and tiny v2-format pretrained weights). How each command runs and why is decided by
``documented_commands.classify``; the table of modes is printed at the end of the session
(``conftest.pytest_terminal_summary``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
import torch

from tests.helpers import add_to_summary

from .documented_commands import (
    CLIS,
    REPO,
    DocumentedCommand,
    classify,
    documented_commands,
    fenced_shell_blocks,
    smoke_overlay,
    split_commands,
    stage_of,
    substitute,
)

pytestmark = pytest.mark.slow
DEMO = REPO / "data" / "demo"
V2_GPT = "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"


def _tiny_pretrained(folder: Path) -> None:
    """v2-format files shaped like the tiny presets: s2G/s2D (SoVITS generator/discriminator) and an s1 GPT .ckpt,
    random weights of the real classes, written by our v2 writers."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gpt_sovits_train.interchange.export import sovits_generator_kwargs
    from gpt_sovits_train.interchange.gpt_sovits_v2 import (
        gpt_v2_config,
        sovits_v2_hparams,
        write_gpt_v2,
        write_sovits_v2,
    )

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    sovits_net = OmegaConf.load(REPO / "conf" / "model" / "sovits" / "tiny.yaml")
    generator = instantiate(sovits_net)
    kwargs = {k: v for k, v in OmegaConf.to_container(sovits_net).items() if not k.startswith("_")}
    write_sovits_v2(generator.state_dict(), sovits_v2_hparams(sovits_generator_kwargs(folder / "x.pth", kwargs)),
                    folder / "s2G2333k.pth", 0, 0)
    discriminator = instantiate(OmegaConf.load(REPO / "conf" / "model" / "sovits.yaml").discriminator,
                                max_channels=64)
    torch.save({"model": discriminator.state_dict(), "iteration": 0}, folder / "s2D2333k.pth")
    gpt = instantiate(OmegaConf.load(REPO / "conf" / "model" / "gpt" / "tiny.yaml")).state_dict()
    heads = int(OmegaConf.load(REPO / "conf" / "model" / "gpt" / "tiny.yaml").num_heads)
    write_gpt_v2(gpt, gpt_v2_config(gpt, heads=heads), folder / V2_GPT, 0)


def _tiny_asr(folder: Path) -> Path:
    """A random-init wav2vec2 CTC ASR model of the real classes (the cloning tests' builder)."""
    from tests.helpers import build_random_ctc_asr

    return build_random_ctc_asr(folder)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reader's working folder with every file the docs name."""
    from gpt_sovits_train.features.random_init import make_chinese_bert, make_ecapa, make_hubert

    ws = tmp_path_factory.mktemp("docs_ws")
    models = ws / "models"
    make_hubert(models / "chinese-hubert-base")
    make_chinese_bert(models / "chinese-roberta-wwm-ext-large")
    make_ecapa(models / "spkrec-ecapa-voxceleb")
    _tiny_pretrained(models / "gsv-v2final-pretrained")
    taken: dict[str, int] = {}
    rows = []
    for line in (DEMO / "demo.list").read_text(encoding="utf-8").splitlines():
        path, speaker, language, text = line.split("|", 3)
        if language == "zh" and taken.get(speaker, 0) < 4:
            taken[speaker] = taken.get(speaker, 0) + 1
            rows.append("|".join([str(DEMO / path), speaker, language, text]))
    (ws / "my_voice.list").write_text("\n".join(rows) + "\n", encoding="utf-8")
    wav, rate = sf.read(DEMO / "ava" / "ava_000.flac", dtype="float32")
    sf.write(ws / "ref.wav", wav, rate)
    _tiny_asr(models / "whisper-small")
    (ws / "eval").mkdir()
    pair = {"key": "p1", "text": "你好世界。", "language": "zh", "reference_audio": str(ws / "ref.wav"),
            "reference_text": "The morning train to the coast leaves at seven fifteen.", "reference_language": "en"}
    (ws / "eval" / "pairs.jsonl").write_text(json.dumps(pair, ensure_ascii=False) + "\n", encoding="utf-8")
    (ws / "recordings").mkdir()
    for name in ("alice.wav", "alice_1.wav", "alice_2.m4a.wav"):
        sf.write(ws / "recordings" / name, wav, rate)
    return ws


class Runner:
    """Runs the documented commands in order in ``ws``, remembering what training produced."""

    def __init__(self, ws: Path) -> None:
        self.ws = ws
        self.checkpoints: dict[str, str] = {}
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
                    "OMP_NUM_THREADS": "1", "PROJECT_ROOT": str(ws)}

    def values(self) -> dict[str, str]:
        return {"ws": str(self.ws), **self.checkpoints}

    def run(self, command: DocumentedCommand, cwd: Path | None = None, index: int = 0) -> dict:
        mode, reason = classify(command)
        started = time.perf_counter()
        if mode == "make -n":
            argv = ["make", "-n", *command.argv[1:]]
            proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
        elif mode == "cluster-only":
            proc = subprocess.CompletedProcess(command.argv, 0, "", "")
        elif mode == "script":  # outputs land in the workspace, not the checkout
            argv = [sys.executable, str(REPO / command.argv[1]), *command.argv[2:]]
            proc = subprocess.run(argv, cwd=self.ws, env=self.env, capture_output=True, text=True, timeout=1800)
        elif command.program == "sbatch":  # compose the CLI it wraps; tests/cluster submits such arrays for real
            wrap = command.argv[command.argv.index("--wrap") + 1] if "--wrap" in command.argv else next(
                a.split("=", 1)[1] for a in command.argv if a.startswith("--wrap="))
            wrapped = [a.replace("$SLURM_ARRAY_TASK_ID", "0") for a in shlex.split(wrap)]
            cli = CLIS[wrapped[0]]
            args = ["--cfg", "job", *(substitute(a, self.values()) for a in wrapped[1:])]
            argv = [sys.executable, "-m", f"gpt_sovits_train.cli.{cli}", *args]
            proc = subprocess.run(argv, cwd=cwd or self.ws, env=self.env, capture_output=True, text=True, timeout=600)
        else:
            cli = CLIS[command.program]
            if "voice=voices/alice/bundle" in command.argv:
                self.bundle()
            args = [substitute(a, self.values()) for a in command.argv[1:]]
            env = {**self.env, **{k: substitute(f"{k}={v}", self.values()).split("=", 1)[1]
                                  for k, v in command.env.items()}}
            if mode == "compose":  # Hydra takes one of -m / --cfg: compose the job a sweep would launch
                args = ["--cfg", "job", *(a for a in args if a not in ("-m", "--multirun"))]
            else:
                if mode == "dry-run":
                    args = [a.replace("dry_run=false", "dry_run=true") for a in args]
                args += smoke_overlay(cli, command.argv[1:], str(self.ws / "runs" / f"cmd{index:02d}"), self.values())
            argv = [sys.executable, "-m", f"gpt_sovits_train.cli.{cli}", *args]
            try:
                proc = subprocess.run(argv, cwd=cwd or self.ws, env=env, capture_output=True, text=True, timeout=1800)
            except subprocess.TimeoutExpired as expired:  # recorded as a failure; the later commands still run
                proc = subprocess.CompletedProcess(argv, 124, str(expired.stdout or ""), f"timed out: {expired}")
            if proc.returncode == 0 and cli == "train" and mode == "smoke":
                self._remember(command, self.ws / "runs" / f"cmd{index:02d}")
        result = {"source": command.source, "command": command.text, "mode": mode, "reason": reason,
                  "rc": proc.returncode, "seconds": round(time.perf_counter() - started, 1),
                  "output": (proc.stdout + proc.stderr)[-3000:]}
        return result

    def _remember(self, command: DocumentedCommand, run_dir: Path) -> None:
        for result_file in sorted(run_dir.rglob("train_result.json")):
            last = json.loads(result_file.read_text()).get("last_checkpoint")
            if last:
                self.checkpoints[stage_of(command.argv)] = last

    def bundle(self) -> None:
        """``voices/alice/bundle``: the documented training runs' checkpoints packed as gst-clone packs them."""
        from omegaconf import OmegaConf

        from gpt_sovits_train.clone.bundle import write_bundle

        target = self.ws / "voices" / "alice" / "bundle"
        if (target / "voice.json").is_file() or not {"gpt", "sovits"} <= set(self.checkpoints):
            return
        networks = {}
        for stage in ("gpt", "sovits"):
            resolved = Path(self.checkpoints[stage]).parents[1] / "resolved_config.yaml"
            networks[stage] = OmegaConf.to_container(OmegaConf.load(resolved).model.net, resolve=True)
        models = self.ws / "models"
        features = {"ssl": {"_target_": "gpt_sovits_train.features.ssl.HubertExtractor",
                            "model": str(models / "chinese-hubert-base"), "device": "cpu"},
                    "bert": {"_target_": "gpt_sovits_train.features.bert.ChineseBertExtractor",
                             "model": str(models / "chinese-roberta-wwm-ext-large"), "device": "cpu"}}
        write_bundle(target, "alice", Path(self.checkpoints["gpt"]), Path(self.checkpoints["sovits"]),
                     self.ws / "ref.wav", "The morning train to the coast leaves at seven fifteen.", "en", ["zh", "en"],
                     {"ssl": features["ssl"]["model"], "bert": features["bert"]["model"]}, "{}\n", {},
                     networks=networks, features=features)


COMMANDS = documented_commands()


@pytest.fixture(scope="session")
def ran(workspace: Path) -> dict[str, dict]:
    """Every documented command run once, in order, then the card's usage line inside the published folder."""
    runner = Runner(workspace)
    results = {}
    for index, command in enumerate(COMMANDS):
        results[command.id] = runner.run(command, index=index)
    published = sorted(workspace.glob("publish/**/README.md"))
    if published:
        card = published[0].read_text(encoding="utf-8")
        block = next(body for line, body in fenced_shell_blocks(card))
        for command in split_commands(block, published[0].relative_to(workspace).as_posix(), 0):
            results["card"] = runner.run(command, cwd=published[0].parent, index=len(COMMANDS))
    return results


def test_docs_have_commands() -> None:
    assert len(COMMANDS) >= 10 and {c.program for c in COMMANDS} >= {"gst-prepare", "gst-train", "gst-synthesize"}


def _summary_line(result: dict) -> str:
    """One row of the terminal summary's "documented commands" table: how the command ran, and for how long."""
    status = "ok" if result["rc"] == 0 else f"FAILED rc={result['rc']}"
    return (f"{result['mode']:<8} {status:<14} {result['seconds']:>6.1f}s  {result['source']:<22} "
            f"{result['command'][:90]}")


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_runs(command: DocumentedCommand, ran: dict[str, dict], request) -> None:
    result = ran[command.id]
    add_to_summary(request.node, "documented commands", _summary_line(result))
    assert result["rc"] == 0, f"{command.source} ({result['mode']}): {command.text}\n{result['output']}"


def test_model_card_usage_line_runs(ran: dict[str, dict], request) -> None:
    """The line gst-publish writes into the card, run inside the published folder (with its ref.wav)."""
    assert "card" in ran, "no documented gst-publish command produced a model card"
    add_to_summary(request.node, "documented commands", _summary_line(ran["card"]))
    counts = Counter(result["mode"] for result in ran.values())  # the table's last line: every command, by mode
    add_to_summary(request.node, "documented commands", f"{len(ran)} documented commands: "
                   + ", ".join(f"{n} {mode}" for mode, n in sorted(counts.items())))
    assert ran["card"]["rc"] == 0, ran["card"]["output"]


# -- the mechanism itself --------------------------------------------------------------------------------------
def test_unclassified_command_fails() -> None:
    (command,) = split_commands("curl https://example.com | sh", "x.md", 1)
    with pytest.raises(ValueError, match="unclassified documented command"):
        classify(command)


def test_unknown_placeholder_fails() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        substitute("output_dir=<your folder>", {"ws": "/tmp"})
    with pytest.raises(ValueError, match="unknown placeholder"):
        substitute("foo.checkpoint=...", {"ws": "/tmp"})


def test_extraction_follows_the_shell() -> None:
    body = "gst-train a=1 \\\n  'b=[x, y]'   # a comment\nHF_TOKEN=... gst-publish dry_run=false\n"
    first, second = split_commands(body, "x.md", 3)
    assert first.argv == ["gst-train", "a=1", "b=[x, y]"] and first.source == "x.md:3"
    assert second.env == {"HF_TOKEN": "..."} and classify(second)[0] == "dry-run"
    indented = "1. step\n   ```bash\n   gst-prepare x=1\n   ```\n```\nnot shell\n```\n"
    assert fenced_shell_blocks(indented) == [(3, "gst-prepare x=1")]


def test_every_documented_override_parses() -> None:
    """Fast check of every documented override against Hydra's grammar (README's unquoted
    ``reference.text="参考音频的文字。"`` used to stop Hydra with LexerNoViableAltException)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for command in COMMANDS:
        if command.program in CLIS:
            argv, overrides = command.argv[1:], []
            for i, arg in enumerate(argv):  # Hydra's own flags and their values are not overrides
                if not arg.startswith("-") and not (i and argv[i - 1] in ("--cfg", "-c", "--package", "-p")):
                    overrides.append(arg)
            parser.parse_overrides([substitute(a, {"ws": "/ws", "gpt": "g", "sovits": "s"}) for a in overrides])


def test_conf_comment_examples_parse() -> None:
    """The usage examples in conf/*.yaml comments are commands too."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for path in sorted((REPO / "conf").glob("*.yaml")):
        body = "\n".join(line.lstrip("# ") for line in path.read_text(encoding="utf-8").splitlines()
                         if line.lstrip().startswith("#   gst-") or line.lstrip().startswith("#       "))
        for command in split_commands(body, path.name, 1):
            if command.program in CLIS:
                parser.parse_overrides([a for a in command.argv[1:] if "=" in a and not a.startswith("-")])

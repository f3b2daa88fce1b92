"""The documented commands, as data: extraction from the docs, classification, placeholders and the smoke overlay.

Every fenced ``bash``/``sh``/``shell``/``console`` block of ``README.md`` and ``docs/*.md`` is split into commands
the way a shell would (backslash continuations joined, ``#`` comments dropped, quotes removed by ``shlex``), plus
the usage line the code writes into the published model card. Each command gets one mode:

* ``smoke``: run for real in a scratch workspace, with :data:`PLACEHOLDERS` mapped to tiny assets and
  :func:`smoke_overlay` appended (tiny presets, a few steps, CPU);
* ``dry-run``: a command that would reach the network (``dry_run=false``) runs with ``dry_run=true``;
* ``compose``: a command that needs a GPU or a cluster runs as ``<cli> --cfg job <args>``: Hydra composes it
  (every override, group and plugin must exist) and stops before running;
* ``make -n``: a Makefile target is expanded, not run (``make test`` would recurse into this suite);
* ``script``: a ``python scripts/...`` command runs as written (its documented size is the smoke size);
* ``cluster-only``: ``scancel`` of a running job: only the live SLURM tests (tests/cluster) can send it. ``sbatch
  --wrap "<cli> ..."`` composes the wrapped CLI.

A command with an unknown program, or a placeholder-looking argument the table does not map, is an error, so a
new documented command either runs or says why not.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
CLIS = {"gst-prepare": "prepare", "gst-train": "train", "gst-synthesize": "synthesize", "gst-evaluate": "evaluate",
        "gst-export": "export", "gst-publish": "publish", "gst-clone": "clone"}

# What needs hardware or services the CI machine lacks: (mode, reason, pattern over the joined arguments).
NEEDS = [
    ("compose", "cluster", re.compile(r"(^| )(hydra/launcher=slurm|trainer=slurm)( |$)")),
    ("compose", "GPU", re.compile(r"(^| )(trainer=(gpu|ddp)|device=cuda|trainer\.devices=[2-9]\d*)( |$)")),
    ("dry-run", "network", re.compile(r"(^| )dry_run=false( |$)")),
    ("compose", "object storage (against a local S3 server, tests/cluster/test_s3.py trains from s3:// and "
                "tests/data/test_prepare_s3.py prepares into it)",
     re.compile(r"(^| )[\w.]+=s3://")),
]

# Placeholders users see -> what the test built. Keys are regular expressions over one argument; "{ws}" is the
# scratch workspace (commands run there, so relative paths such as data/shards/my_voice, my_voice.list,
# recordings/alice.wav or ref.wav name files the workspace holds), "{gpt}"/"{sovits}" the newest checkpoint a
# documented gst-train command produced for that stage.
PLACEHOLDERS: dict[str, str] = {
    r"(?<![\w./])/models/": "{ws}/models/",  # pretrained models (feature extractors, v2 weights)
    r"(?<![\w./])/data/shards/\w+": "{ws}/data/shards/my_voice",  # cluster paths to a prepared corpus
    r"(?<![\w./])/data/LibriTTS_R/[\w-]+": "{ws}/data/demo",  # a raw corpus folder (the pretraining recipe)
    r"^((gpt\.|gpt_)checkpoint)=\.\.\.$": r"\1={gpt}",
    r"^((sovits\.|sovits_)checkpoint)=\.\.\.$": r"\1={sovits}",
    r"^(reference\.audio)=ref\.wav$": r"\1={ws}/ref.wav",  # also from inside the published folder
    r"^text=('?)\.\.\.\1$": "text='Hello there.'",
    r"^HF_TOKEN=\.\.\.$": "HF_TOKEN=hf_docs_test_dummy",
}
# What a placeholder looks like: anything left matching this after substitution is an unmapped placeholder.
UNMAPPED = re.compile(r"\.\.\.|(?<![\w./])/models/|(?<![\w./])/data/|<[a-z_ ]+>")


@dataclass
class DocumentedCommand:
    """One command as the docs show it, and where."""

    source: str  # "README.md:52"
    text: str  # as written (continuations joined)
    argv: list[str]  # after shell parsing
    env: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        return self.argv[0] if self.argv else ""

    @property
    def id(self) -> str:
        return f"{self.source} {' '.join(self.argv)[:60]}"


def fenced_shell_blocks(markdown: str) -> list[tuple[int, str]]:
    """``(first line number, dedented body)`` of every fenced block in a shell language (indented ones too)."""
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        match = re.match(r"^(\s*)```\s*(\w*)", lines[i])
        if not match:
            i += 1
            continue
        indent, language = match.group(1), match.group(2).lower()
        end = i + 1
        while end < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[end]):
            end += 1
        if language in SHELL_LANGUAGES:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1 : end]]
            blocks.append((i + 2, "\n".join(body)))
        i = end + 1
    return blocks


def split_commands(body: str, source_file: str, first_line: int) -> list[DocumentedCommand]:
    """Shell commands of one block: continuations joined, comments and ``$ `` prompts dropped."""
    commands, pending, start = [], "", first_line
    for offset, line in enumerate(body.splitlines()):
        if not pending:
            start = first_line + offset
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        text, pending = pending.strip(), ""
        text = text[2:] if text.startswith("$ ") else text
        argv = shlex.split(text, comments=True)
        if not argv:
            continue
        env = {}
        while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
            key, value = argv.pop(0).split("=", 1)
            env[key] = value
        commands.append(DocumentedCommand(f"{source_file}:{start}", re.sub(r"\s+", " ", text), argv, env))
    return commands


def documented_commands(repo: Path = REPO) -> list[DocumentedCommand]:
    """Every fenced shell command of README.md and docs/*.md, in reading order."""
    files = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    found = []
    for path in files:
        for line, body in fenced_shell_blocks(path.read_text(encoding="utf-8")):
            found += split_commands(body, path.relative_to(repo).as_posix(), line)
    return found


def classify(command: DocumentedCommand) -> tuple[str, str]:
    """``(mode, reason)``; raises ValueError for a program the test does not know how to run."""
    if command.program == "make":
        return "make -n", "runs the test suite or the 8-minute demo"
    if command.program == "python" and command.argv[1:2] and command.argv[1].startswith("scripts/"):
        return "script", "a repository script at its documented (smoke) size"
    if command.program == "sbatch":
        return "compose", "needs a SLURM cluster: the wrapped CLI is composed (tests/cluster submits it for real)"
    if command.program == "scancel":
        return "cluster-only", "signals a running SLURM job: tests/cluster/test_slurm_train.py sends it to a live job"
    if command.program not in CLIS:
        raise ValueError(f"{command.source}: unclassified documented command {command.text!r}: teach "
                         "tests/docs/documented_commands.py how to run it (or document it as prose)")
    if "--cfg" in command.argv:
        return "compose", "the documented command itself only composes the job"
    if {"-m", "--multirun"} & set(command.argv):
        return "compose", "a sweep: tests/cluster/test_sweeps.py and tests/training run sweeps for real"
    if command.program == "gst-clone":
        return "compose", "the whole cloning workflow (ASR, two trainings): tests/clone/test_clone_e2e.py runs it"
    joined = " ".join(command.argv[1:])
    for mode, reason, pattern in NEEDS:
        if pattern.search(joined):
            return mode, f"needs {reason}"
    return "smoke", "runs at smoke scale"


def substitute(argument: str, values: dict[str, str]) -> str:
    """Map one argument through :data:`PLACEHOLDERS`; ``values`` fills ``{ws}``, ``{gpt}``, ``{sovits}``."""
    for pattern, replacement in PLACEHOLDERS.items():
        if re.search(pattern, argument):
            filled = replacement
            for key, value in values.items():
                filled = filled.replace("{" + key + "}", value)
            argument = re.sub(pattern, filled, argument)
    leftover = UNMAPPED.search(argument)
    if leftover:
        raise ValueError(f"unknown placeholder {leftover.group(0)!r} in {argument!r}: add it to PLACEHOLDERS in "
                         "tests/docs/documented_commands.py (mapped to an asset the docs test builds)")
    return argument


def stage_of(argv: list[str]) -> str:
    """Which training stage a gst-train command trains (model=..., or the experiment's name)."""
    for argument in argv:
        if argument.startswith(("model=", "experiment=")):
            return "sovits" if "sovits" in argument else "gpt"
    return "gpt"


def smoke_overlay(cli: str, argv: list[str], run_dir: str, values: dict[str, str]) -> list[str]:
    """Overrides appended to a smoke run (later overrides win in Hydra): tiny, short, CPU, quiet."""
    keys = {a.split("=", 1)[0].lstrip("+~") for a in argv}
    multirun = "-m" in argv or "--multirun" in argv
    folder = [f"hydra.sweep.dir={run_dir}"] if multirun else [f"hydra.run.dir={run_dir}"]
    if cli == "train":
        stage = stage_of(argv)
        tiny = [f"model/{stage}@model.net=tiny"]
        if stage == "sovits":
            tiny.append("model.discriminator.max_channels=64")
        shards = [] if "data.shards" in keys else [f"data.shards={values['ws']}/data/shards/my_voice"]
        logger = [] if "logger" in keys or "~logger" in argv else ["logger=csv"]
        launcher = ["hydra/launcher=basic"] if multirun and "hydra/launcher" not in keys else []
        return [*folder, *tiny, *shards, *logger, *launcher, "trainer=cpu", "trainer.precision=32-true",
                "trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
                "data.num_workers=0", "data.batching.max_batch_size=2", "data.val_batching.max_batch_size=2"]
    if cli in ("synthesize", "evaluate"):
        features = [] if "voice" in keys or any(k.startswith("features") for k in keys) else [
            f"features.ssl.model={values['ws']}/models/chinese-hubert-base",
            f"features.bert.model={values['ws']}/models/chinese-roberta-wwm-ext-large"]
        return [*folder, *features, "sampling.max_seconds=1"]
    if cli == "prepare":
        return [*folder, "progress=false"]
    return folder

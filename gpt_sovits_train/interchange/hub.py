"""Publish trained voices to the Hugging Face Hub: safetensors weights, resolved config and a model card.

The folder is always assembled locally first (``dry_run`` stops there), so what would be uploaded can be inspected
and tests never touch the network. The access token is read from ``HF_TOKEN`` at upload time and passed straight to
``huggingface_hub``; it is never printed, logged or written into the folder. The folder holds exactly
:data:`PUBLISHED_FILES`: each stage's training config is written with secret-looking values redacted (a token passed as
``+hf_token=...`` included) and local absolute paths cut to their file names, and only those files are uploaded
(no logs, no stray files a user left in the folder).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from gpt_sovits_train.audio.ai_metadata import AI_NOTICE
from gpt_sovits_train.interchange.redact import redact

log = logging.getLogger(__name__)
TOKEN_ENV = "HF_TOKEN"
PUBLISHED_FILES = (
    "gpt/model.safetensors",
    "gpt/resolved_config.yaml",
    "sovits/model.safetensors",
    "sovits/resolved_config.yaml",
    "README.md",
)


def shareable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as it may leave the machine: secrets redacted, absolute local paths reduced to file names."""

    def local_paths_cut(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: local_paths_cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [local_paths_cut(v) for v in value]
        if isinstance(value, str) and "://" not in value and (os.path.isabs(value) or value.startswith("~")):
            return Path(value).name
        return value

    return local_paths_cut(redact(dict(config), "published config"))


@dataclass
class TrainingDataSummary:
    """What the card says about the data: enough to judge fitness for use without exposing the recordings."""

    utterances: int = 0
    hours: float = 0.0
    speakers: int = 0
    languages: list[str] = field(default_factory=list)
    source: str = "user-provided recordings"

    @classmethod
    def from_manifest(cls, manifest_path: str | Path, source: str = "user-provided recordings") -> TrainingDataSummary:
        """Summarize a prepared dataset's ``manifest.json`` (written by ``gst-prepare``) and its split indexes."""
        manifest_path = Path(manifest_path)
        manifest = json.loads(manifest_path.read_text())
        languages: set[str] = set()
        for split in manifest.get("splits", {}).values():
            index = manifest_path.parent / split.get("index", "")
            if index.is_file():
                for line in index.read_text().splitlines():
                    language = json.loads(line).get("language") if line.strip() else None
                    if language:
                        languages.add(str(language))
        return cls(
            utterances=int(manifest.get("written", 0)),
            hours=round(float(manifest.get("hours", 0.0)), 4),
            speakers=len(manifest.get("speakers", {})),
            languages=sorted(languages),
            source=source,
        )


def _weights_to_safetensors(weights: Mapping[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(path))


GPT_WEIGHTS = "gpt/model.safetensors"
SOVITS_WEIGHTS = "sovits/model.safetensors"
RUN_CONFIG = "resolved_config.yaml"
# Run from inside the published folder; ref.wav is a 3-10 s clip of the voice, its transcript goes in
# reference.text. Kept a working command: the docs test runs it (tests/docs).
USAGE = (
    f"gst-synthesize gpt.checkpoint={GPT_WEIGHTS} sovits.checkpoint={SOVITS_WEIGHTS} \\\n"
    "  reference.audio=ref.wav \"reference.text='The words spoken in ref.wav.'\" reference.language=en \\\n"
    "  \"text='Hello there.'\" output=out.wav"
)


def training_config_beside(checkpoint: str | Path) -> dict[str, Any] | None:
    """The resolved training config (``resolved_config.yaml``) of the ``gst-train`` run that wrote
    ``checkpoint`` (in the run folder or its ``checkpoints/``), read as plain YAML data; None if absent."""
    path = Path(checkpoint).resolve()
    for folder in (path.parent, path.parent.parent):
        if (folder / RUN_CONFIG).is_file():
            return yaml.safe_load((folder / RUN_CONFIG).read_text(encoding="utf-8"))
    return None


def build_model_card(
    name: str, data: TrainingDataSummary, metrics: Mapping[str, float], base_model: str = "GPT-SoVITS v2"
) -> str:
    """Markdown card with Hub YAML front matter: data summary, metrics, intended use and the AI notice."""
    front = {
        "library_name": "gpt_sovits_train",
        "tags": ["text-to-speech", "voice-cloning", "gpt-sovits", "ai-generated"],
        "license": "mit",
        "pipeline_tag": "text-to-speech",
    }
    metric_rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in metrics.items()) or "| (none measured) | |"
    languages = ", ".join(data.languages) or "unspecified"
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {name}

A few-shot voice model in the GPT-SoVITS v2 layout (GPT text→semantic stage + SoVITS semantic→wave stage),
trained with `gpt_sovits_train` from {base_model}.

> **{AI_NOTICE}.** Audio made with this model is synthetic. Every file written by `gpt_sovits_train` carries
> this notice in its metadata (WAV INFO comment, FLAC/OGG Vorbis comment). Keep it, and disclose synthetic
> speech to listeners.

## Training data
| | |
|---|---|
| source | {data.source} |
| utterances | {data.utterances} |
| hours | {data.hours:.3f} |
| speakers | {data.speakers} |
| languages | {languages} |

## Evaluation
| metric | value |
|---|---|
{metric_rows}

## Intended use
Text-to-speech in the trained voice **with the consent of the person whose voice it is**: accessibility, dubbing,
prototyping and research. Not for impersonation, fraud, harassment, political deception or any use without the
speaker's consent, and not for bypassing voice authentication.

## Files
* `gpt/model.safetensors`, `sovits/model.safetensors`: weights (our key names = GPT-SoVITS v2 key names).
* `gpt/resolved_config.yaml`, `sovits/resolved_config.yaml`: the resolved training configuration of each stage
  (synthesis rebuilds each network from the one beside its weights).

## How to use
```bash
{USAGE}
```
`features.ssl.model` / `features.bert.model` name the HuBERT and BERT models the training data was prepared with
(defaults: the v2 Chinese ones).
"""


def prepare_publish_folder(
    folder: str | Path,
    gpt_weights: Mapping[str, torch.Tensor],
    sovits_weights: Mapping[str, torch.Tensor],
    configs: Mapping[str, Mapping[str, Any]],
    data: TrainingDataSummary,
    metrics: Mapping[str, float] | None = None,
    name: str = "gpt-sovits-voice",
) -> Path:
    """Write everything that would be uploaded into ``folder`` and return it. ``configs`` maps ``"gpt"`` and
    ``"sovits"`` to the resolved training config of each stage (each goes beside its weights)."""
    missing = [stage for stage in ("gpt", "sovits") if not configs.get(stage)]
    if missing:
        raise ValueError(f"no training config for {missing}: publish checkpoints written by gst-train")
    folder = Path(folder)
    for stage, weights in (("gpt", gpt_weights), ("sovits", sovits_weights)):
        (folder / stage).mkdir(parents=True, exist_ok=True)
        # Exported SoVITS files never carry the training-only posterior encoder.
        kept = {k: v for k, v in weights.items() if not k.startswith("enc_q.")}
        _weights_to_safetensors(kept, folder / stage / "model.safetensors")
        (folder / stage / RUN_CONFIG).write_text(yaml.safe_dump(shareable_config(configs[stage]), sort_keys=False))
    (folder / "README.md").write_text(build_model_card(name, data, dict(metrics or {})))
    return folder


def publish_folder(folder: str | Path, repo_id: str, dry_run: bool = True, private: bool = True) -> str:
    """Upload a prepared folder to ``repo_id``; with ``dry_run`` only report what would be uploaded.

    Returns the repository URL (or the local folder for a dry run). Needs ``HF_TOKEN`` in the environment.
    """
    folder = Path(folder)
    files = [name for name in PUBLISHED_FILES if (folder / name).is_file()]
    if dry_run:
        log.info("dry run: would upload %s to %s", files, repo_id)
        return str(folder)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise RuntimeError(f"set {TOKEN_ENV} to a Hugging Face write token to publish (or use dry_run=true)")
    from huggingface_hub import HfApi  # imported late: dry runs and tests never need it

    api = HfApi(token=token)
    url = api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), allow_patterns=files,
                      commit_message="Upload gpt_sovits_train voice")
    log.info("published %d files to %s", len(files), repo_id)
    return str(url)

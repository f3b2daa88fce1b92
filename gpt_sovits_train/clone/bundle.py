"""The voice bundle: one folder that holds everything synthesis needs for a cloned voice.

Layout (``voice.json`` is the index; every path in it is relative to the folder so a bundle
can be moved, zipped or uploaded as is)::

    <bundle>/
      voice.json        format tag, name, languages, file names below, the network and feature-extractor
                        configs synthesis instantiates (``synthesis``), training summary
      gpt.ckpt          GPT-stage checkpoint (as written by training)
      sovits.ckpt       SoVITS-stage checkpoint (as written by training)
      reference.wav     the reference clip (32 kHz mono 16-bit)
      config.yaml       the resolved cloning config that produced the bundle
      README.md         model card: data used, recipe, limits, consent note

``gst-synthesize voice=<bundle>`` reads ``voice.json`` through :func:`load_bundle`;
:meth:`VoiceBundle.synthesis_config` gives the ``gpt``/``sovits``/``features``/``reference`` nodes of
``conf/synthesize.yaml`` filled in, so ``inference.factory.build_synthesizer`` needs nothing else.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import soundfile as sf

from gpt_sovits_train import __version__
from gpt_sovits_train.interchange.safe_config import check_travelling_config

BUNDLE_FORMAT = "gst-voice/1"
INDEX = "voice.json"


@dataclass(frozen=True)
class VoiceBundle:
    """A loaded bundle with absolute paths."""

    root: Path
    name: str
    gpt_checkpoint: Path
    sovits_checkpoint: Path
    reference_audio: Path
    reference_text: str
    reference_language: str
    languages: list[str]
    feature_models: dict[str, str]  # "ssl"/"bert" -> path or hub id used to prepare training data
    config: Path | None
    networks: dict[str, dict] = field(default_factory=dict)  # "gpt"/"sovits" -> instantiable net config
    features: dict = field(default_factory=dict)  # prepare-style extractor specs (ssl, bert, speaker, ...)
    extra: dict = field(default_factory=dict)

    def synthesis_config(self, device: str = "cpu") -> dict:
        """The nodes ``build_synthesizer`` and ``Reference`` need, with absolute paths."""
        if not self.networks.get("gpt") or not self.networks.get("sovits"):
            raise ValueError(f"voice bundle {self.root} has no network configs in voice.json; re-run its bundle step")
        gpt: dict = {"checkpoint": str(self.gpt_checkpoint), "net": self.networks["gpt"], "backend": "network"}
        heads = _attention_heads(self.networks["gpt"])
        if heads:  # the fast KV-cache decoder needs the head count; without it use the network itself
            gpt |= {"backend": "cached", "heads": heads}
        return {
            "gpt": gpt,
            "sovits": {"checkpoint": str(self.sovits_checkpoint), "net": self.networks["sovits"]},
            "features": self.features,
            "reference": {"audio": str(self.reference_audio), "text": self.reference_text,
                          "language": self.reference_language},
            "model_name": self.name,
            "device": device,
        }


def write_bundle(
    out_dir: Path,
    name: str,
    gpt_checkpoint: Path,
    sovits_checkpoint: Path,
    reference_audio: Path,
    reference_text: str,
    reference_language: str,
    languages: list[str],
    feature_models: dict[str, str],
    config_yaml: str,
    summary: dict,
    networks: dict[str, dict] | None = None,
    features: dict | None = None,
) -> Path:
    """Copy the artefacts into ``out_dir`` and write ``voice.json``, ``config.yaml`` and the model card."""
    for label, path in (("GPT checkpoint", gpt_checkpoint), ("SoVITS checkpoint", sovits_checkpoint),
                        ("reference clip", reference_audio)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{label} {path} does not exist: re-run the step that produces it")
    if not reference_text.strip():
        raise ValueError("the reference clip has no transcript: fix its line in the .list file and re-run")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(gpt_checkpoint, out_dir / "gpt.ckpt")
    shutil.copy2(sovits_checkpoint, out_dir / "sovits.ckpt")
    wav, rate = sf.read(str(reference_audio), dtype="float32")
    sf.write(str(out_dir / "reference.wav"), wav, rate, subtype="PCM_16")
    (out_dir / "config.yaml").write_text(config_yaml, encoding="utf-8")
    index = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "framework_version": __version__,
        "gpt_checkpoint": "gpt.ckpt",
        "sovits_checkpoint": "sovits.ckpt",
        "reference": {"audio": "reference.wav", "text": reference_text, "language": reference_language,
                      "seconds": round(len(wav) / rate, 3)},
        "languages": languages,
        "feature_models": feature_models,
        "config": "config.yaml",
        "synthesis": {"networks": networks or {}, "features": features or {}},
        "training_summary": summary,
    }
    (out_dir / INDEX).write_text(json.dumps(index, indent=2, ensure_ascii=False), encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(index), encoding="utf-8")
    return out_dir


def load_bundle(path: str | Path) -> VoiceBundle:
    """Read a bundle folder (or its ``voice.json``); errors say which file is missing. Every ``_target_`` under
    ``synthesis`` must be one of our network/feature classes
    (:func:`~gpt_sovits_train.interchange.safe_config.check_travelling_config`), else
    :class:`~gpt_sovits_train.interchange.safe_config.UnsafeConfigError` before anything is built."""
    root = Path(path)
    if root.name == INDEX:
        root = root.parent
    index_path = root / INDEX
    if not index_path.is_file():
        raise FileNotFoundError(f"{root} is not a voice bundle: {INDEX} is missing (make one with gst-clone)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if index.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{index_path}: unsupported bundle format {index.get('format')!r}; expected {BUNDLE_FORMAT}")
    files = {k: root / index[k] for k in ("gpt_checkpoint", "sovits_checkpoint")}
    files["reference_audio"] = root / index["reference"]["audio"]
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"voice bundle {root} is incomplete, missing: {missing}")
    known = {"format", "name", "gpt_checkpoint", "sovits_checkpoint", "reference", "languages", "feature_models",
             "config", "synthesis"}
    synthesis = index.get("synthesis", {})
    # A bundle is downloaded data: the configs synthesis instantiates may only name our networks/extractors.
    check_travelling_config(synthesis, f"{index_path} (synthesis)", "synthesis")
    return VoiceBundle(
        root=root,
        name=index["name"],
        reference_text=index["reference"]["text"],
        reference_language=index["reference"]["language"],
        languages=list(index.get("languages", [])),
        feature_models=dict(index.get("feature_models", {})),
        config=root / index["config"] if index.get("config") else None,
        networks=dict(synthesis.get("networks", {})),
        features=dict(synthesis.get("features", {})),
        extra={k: v for k, v in index.items() if k not in known},
        **files,
    )


def _attention_heads(net: dict) -> int | None:
    """The GPT net config's attention-head count, under whichever name the network class uses."""
    for key in ("num_heads", "num_head", "n_head", "heads", "nhead"):
        if isinstance(net.get(key), int):
            return net[key]
    nested = net.get("config")
    return _attention_heads(nested) if isinstance(nested, dict) else None


def model_card(index: dict) -> str:
    """A short, honest model card: what went in, how it was trained, what it must not be used for."""
    summary = index.get("training_summary", {})
    data = summary.get("data", {})
    losses = summary.get("losses", {})
    lines = [
        f"# Voice: {index['name']}",
        "",
        f"A GPT-SoVITS v2-style voice made with gpt_sovits_train {index['framework_version']} on {index['created']}.",
        "",
        "## Data",
        f"- kept speech: {data.get('kept_minutes', '?')} min in {data.get('kept_segments', '?')} segments "
        f"(input {data.get('input_minutes', '?')} min)",
        f"- dropped: {data.get('dropped_minutes_by_reason', {})}",
        f"- transcripts: {summary.get('asr', 'ASR')} (user-editable .list file)",
        "",
        "## Training",
        f"- GPT stage final loss: {losses.get('gpt', 'n/a')}; SoVITS stage final losses: {losses.get('sovits', 'n/a')}",
        f"- feature models: {index.get('feature_models', {})}",
        "",
        "## Use",
        f"`gst-synthesize voice=<this folder> \"text='...'\"`; reference: \"{index['reference']['text']}\" "
        f"({index['reference']['language']}, {index['reference']['seconds']} s). Languages: {index['languages']}.",
        "",
        "## Limits and consent",
        "Trained on about a minute of one person's speech: expect accent and prosody drift on long or unusual text.",
        "Only clone a voice with its owner's consent, and disclose synthetic speech as such.",
        "",
    ]
    return "\n".join(lines)

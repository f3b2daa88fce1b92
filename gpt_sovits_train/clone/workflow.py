"""The cloning workflow: raw recordings → segments → transcripts → shards → fine-tuned stages → voice bundle.

Each step is a method that reads earlier results and writes into ``cfg.work_dir``; the
:class:`~gpt_sovits_train.clone.steps.StepRunner` makes every step resumable and skippable.
The training stages are the ordinary ``train(cfg)`` entry composed from ``conf/train.yaml``
with the few-shot recipe from ``conf/clone.yaml`` on top, so a cloning run is exactly the
training run a user could start by hand with ``gst-train``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import soundfile as sf
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from gpt_sovits_train.clone.bundle import load_bundle, write_bundle
from gpt_sovits_train.clone.curate import SegmentRules, curate_recordings
from gpt_sovits_train.clone.reference import ReferencePolicy, analyze_clip, select_reference
from gpt_sovits_train.clone.steps import Step, StepResults, StepRunner, require
from gpt_sovits_train.clone.transcribe import ListEntry, read_list, write_list
from gpt_sovits_train.interchange.redact import redacted_yaml

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
STEP_NAMES = ("slice", "transcribe", "prepare", "train_sovits", "train_gpt", "reference", "bundle", "sample")


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<name>.yaml`` with ``overrides``, inside a running Hydra app (gst-clone) or outside it."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name=name, overrides=overrides)
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name=name, overrides=overrides)


def resolved_yaml(cfg: DictConfig) -> str:
    """The config with every interpolation resolved, also outside a running Hydra app (the Python API, tests),
    where ``paths.output_dir``/``paths.work_dir`` (``${hydra:...}``) fall back to the current directory. Secret-looking
    values are redacted (the bundle is meant to be shared)."""
    from hydra.core.hydra_config import HydraConfig

    snapshot = copy.deepcopy(cfg)
    if not HydraConfig.initialized() and "paths" in snapshot:
        with open_dict(snapshot):
            snapshot.paths.output_dir = snapshot.paths.work_dir = os.getcwd()
    return redacted_yaml(OmegaConf.to_container(snapshot, resolve=True), "voice bundle config")


class CloneWorkflow:
    """Binds a resolved ``clone`` config to the eight steps of the workflow."""

    def __init__(self, cfg: DictConfig) -> None:
        for key in ("voice_name", "inputs"):
            if OmegaConf.is_missing(cfg, key):
                raise ValueError(f"gst-clone needs {key}=...; e.g. gst-clone voice_name=alice inputs='[me.wav]'")
        self.cfg = cfg
        self.work_dir = Path(cfg.work_dir or Path(cfg.voices_dir) / cfg.voice_name)
        self.bundle_dir = Path(cfg.bundle_dir or self.work_dir / "bundle")
        self.list_path = self.work_dir / "transcripts.list"

    # -- the steps -------------------------------------------------------------------------------------------
    def slice(self, _: StepResults) -> dict[str, Any]:
        cfg = self.cfg.slice
        rules = SegmentRules(**OmegaConf.to_container(cfg.rules, resolve=True))
        report = curate_recordings(
            [Path(p) for p in self.cfg.inputs],
            self.work_dir / "segments",
            vad=hydra.utils.instantiate(cfg.vad),
            denoiser=hydra.utils.instantiate(cfg.denoiser) if cfg.get("denoiser") else None,
            rules=rules,
            voice_name=self.cfg.voice_name,
        )
        report.save(self.work_dir / "slice_report.json")
        if not report.kept:
            raise RuntimeError(
                f"no usable speech found in {list(self.cfg.inputs)} (see {self.work_dir / 'slice_report.json'}): "
                "check the recording is audible speech, or lower slice.vad.threshold_db"
            )
        return {"summary": report.summary(), "segments": [{"key": s.key, "path": s.path} for s in report.kept]}

    def transcribe(self, results: StepResults) -> dict[str, Any]:
        segments = require(results, "slice", "transcribe")["segments"]
        asr = hydra.utils.instantiate(self.cfg.asr)
        entries, empty = [], []
        for seg in tqdm(segments, desc="transcribe", unit="clip"):
            wav, rate = sf.read(seg["path"], dtype="float32")
            result = asr(wav, rate)
            if result.text:
                entries.append(ListEntry(seg["path"], self.cfg.voice_name, result.language, result.text))
            else:
                empty.append(seg["key"])
        if not entries:
            raise RuntimeError("the ASR model returned no text for any segment: check asr.model and asr.language")
        write_list(self.list_path, entries)
        log.info("transcripts written to %s: correct them there, then re-run with restart_from=prepare",
                 self.list_path)
        return {"list": str(self.list_path), "lines": len(entries), "no_transcript": empty}

    def prepare(self, _: StepResults) -> dict[str, Any]:
        if not self.list_path.is_file():
            raise FileNotFoundError(f"{self.list_path} is missing: run the transcribe step or write it by hand")
        from gpt_sovits_train.data.prepare import prepare

        out_dir = self.work_dir / "shards"
        overrides = [f"input.path={self.list_path}", f"output_dir={out_dir}", "overwrite=true",
                     *self.cfg.prepare.overrides]
        cfg = compose_config("prepare", overrides)
        if self.cfg.pretrained.get("sovits") and self.cfg.prepare.semantic_from_pretrained_sovits:
            with open_dict(cfg):
                cfg.features.semantic = self._pretrained_semantic_extractor()
        manifest = prepare(cfg)
        if manifest is None:
            raise RuntimeError("data preparation did not finish (partitioned run?): use num_partitions=1 for cloning")
        # Synthesis must embed text and reference audio with the very extractors the data was prepared with.
        features = OmegaConf.to_container(cfg.features, resolve=True)
        return {"shards": str(out_dir), "written": manifest.get("written"),
                "skipped_by_reason": manifest.get("skipped_by_reason", {}), "features": features}

    def train_sovits(self, results: StepResults) -> dict[str, Any]:
        return self._train("sovits", require(results, "prepare", "train_sovits")["shards"])

    def train_gpt(self, results: StepResults) -> dict[str, Any]:
        return self._train("gpt", require(results, "prepare", "train_gpt")["shards"])

    def reference(self, results: StepResults) -> dict[str, Any]:
        entries = read_list(self.list_path)
        policy = ReferencePolicy(**OmegaConf.to_container(self.cfg.reference, resolve=True))
        stats, by_key = [], {}
        for entry in tqdm(entries, desc="rank reference clips", unit="clip"):
            wav, rate = sf.read(entry.path, dtype="float32")
            key = Path(entry.path).stem
            stats.append(analyze_clip(key, wav, rate, entry.text))
            by_key[key] = entry
        chosen, table = select_reference(stats, policy)
        (self.work_dir / "reference_ranking.json").write_text(json.dumps(table, indent=2))
        entry = by_key[chosen.key]
        return {"audio": entry.path, "text": entry.text, "language": entry.language, "stats": chosen.to_dict()}

    def bundle(self, results: StepResults) -> dict[str, Any]:
        sovits = require(results, "train_sovits", "bundle")
        gpt = require(results, "train_gpt", "bundle")
        ref = require(results, "reference", "bundle")
        features = require(results, "prepare", "bundle")["features"]
        languages = sorted({e.language for e in read_list(self.list_path)})
        out = write_bundle(
            self.bundle_dir,
            self.cfg.voice_name,
            Path(gpt["checkpoint"]),
            Path(sovits["checkpoint"]),
            Path(ref["audio"]),
            ref["text"],
            ref["language"],
            languages,
            {k: str(v) for k, v in self.cfg.features.items() if v},
            resolved_yaml(self.cfg),
            self._summary(results),
            networks={"gpt": gpt["net"], "sovits": sovits["net"]},
            features={k: v for k, v in features.items() if k in ("ssl", "bert", "speaker")},
        )
        return {"bundle": str(out)}

    def sample(self, results: StepResults) -> dict[str, Any]:
        from gpt_sovits_train.inference.factory import build_synthesizer
        from gpt_sovits_train.inference.synthesizer import Reference, SamplingSettings

        bundle = load_bundle(require(results, "bundle", "sample")["bundle"])
        synth_cfg = bundle.synthesis_config(device=self.cfg.device)
        synthesizer = build_synthesizer(synth_cfg)
        out = self.work_dir / "sample.wav"
        result = synthesizer.synthesize(
            self.cfg.sample.text,
            self.cfg.sample.language,
            Reference(**synth_cfg["reference"]),
            SamplingSettings(**OmegaConf.to_container(self.cfg.sample.sampling, resolve=True)),
            output=out,
        )
        return {"wav": str(out), "seconds": round(result.duration, 3), "rtf": round(result.rtf, 3),
                "text": self.cfg.sample.text}

    # -- running ---------------------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        return [Step(name, getattr(self, name), (getattr(self, name).__doc__ or "").strip()) for name in STEP_NAMES]

    def run(self) -> dict[str, Any]:
        runner = StepRunner(self.work_dir / "steps", skip=list(self.cfg.skip), restart_from=self.cfg.restart_from)
        results, status = runner.run(self.steps())
        summary = self._summary(results) | {"steps": status}
        (self.work_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        print(format_summary(summary, self.work_dir))
        return summary

    # -- helpers ---------------------------------------------------------------------------------------------
    def _train(self, stage: str, shards: str) -> dict[str, Any]:
        recipe = self.cfg.train[stage]
        overrides = [
            f"model={stage}",
            f"data.shards={shards}",
            f"paths.output_dir={self.work_dir / ('train_' + stage)}",
            f"paths.work_dir={Path.cwd()}",  # not ${hydra:runtime.cwd}: also works outside a Hydra app
            *(f"{key}={path}" for key, path in recipe.get("init", {}).items() if path),
            *recipe.overrides,
        ]
        cfg = compose_config("train", overrides)
        from gpt_sovits_train.training.run import train

        result = train(cfg)
        checkpoint = result.get("last_checkpoint") or result.get("best_checkpoint")
        if not checkpoint:
            raise RuntimeError(f"{stage} training wrote no checkpoint (status {result['status']}); see its log")
        return {"checkpoint": checkpoint, "metrics": result["metrics"], "steps": result["global_step"],
                "net": OmegaConf.to_container(cfg.model.net, resolve=True)}

    def _pretrained_semantic_extractor(self) -> dict[str, Any]:
        """GPT targets are codes of the *pretrained* SoVITS quantizer, as in v2 (fine-tuning keeps it frozen)."""
        net = compose_config("train", ["model=sovits", *self.cfg.train.sovits.overrides]).model.net
        return {
            "_target_": "gpt_sovits_train.features.semantic.LatentCodeExtractor",
            "model": {
                "_target_": "gpt_sovits_train.inference.loading.load_network",
                "network": OmegaConf.to_container(net, resolve=True),
                "path": str(self.cfg.pretrained.sovits),
                "kind": "sovits",
            },
        }

    def _summary(self, results: StepResults) -> dict[str, Any]:
        summary: dict[str, Any] = {"voice": self.cfg.voice_name}
        if "slice" in results:
            summary["data"] = results["slice"]["summary"]
        if "transcribe" in results:
            summary["asr"] = str(self.cfg.asr.get("model", self.cfg.asr._target_))
            summary["transcribed_segments"] = results["transcribe"]["lines"]
        losses = {stage: results[f"train_{stage}"]["metrics"] for stage in ("sovits", "gpt")
                  if f"train_{stage}" in results}
        if losses:
            summary["losses"] = losses
        for key in ("reference", "bundle", "sample"):
            if key in results:
                summary[key] = results[key]
        return summary


def format_summary(summary: dict[str, Any], work_dir: Path) -> str:
    """The end-of-run report a person reads: data kept and dropped, losses, where the results are."""
    lines = [f"voice {summary['voice']!r} ({work_dir})"]
    data = summary.get("data")
    if data:
        dropped = ", ".join(f"{k} {v} min" for k, v in data["dropped_minutes_by_reason"].items()) or "none"
        lines.append(f"  audio: {data['input_minutes']} min in, {data['kept_minutes']} min kept in "
                     f"{data['kept_segments']} segments; dropped: {dropped}; "
                     f"silence/pauses {data['silence_minutes']} min")
    for stage, metrics in summary.get("losses", {}).items():
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if "loss" in k) or "no loss logged"
        lines.append(f"  {stage}: {shown}")
    if "reference" in summary:
        ref = summary["reference"]
        lines.append(f"  reference: {ref['audio']} ({ref['stats']['duration']:.1f} s) \"{ref['text']}\"")
    if "bundle" in summary:
        lines.append(f"  bundle: {summary['bundle']['bundle']}  →  gst-synthesize voice={summary['bundle']['bundle']}")
    if "sample" in summary:
        lines.append(f"  sample: {summary['sample']['wav']}")
    lines.append("  steps: " + ", ".join(f"{k}={v}" for k, v in summary.get("steps", {}).items()))
    return "\n".join(lines)


def run_clone(cfg: DictConfig) -> dict[str, Any]:
    """Entry point behind ``gst-clone``."""
    return CloneWorkflow(cfg).run()

"""Every Hydra config composes, resolves, and (for `train`) builds its parts; typos fail at composition."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError

import gpt_sovits_train.training.resolvers  # noqa: F401
from gpt_sovits_train.training.instantiate import instantiate_callbacks, instantiate_loggers
from tests.helpers import compose_train, stages

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    folder = CONF / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_without_hydra(cfg: DictConfig) -> dict:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    return resolved


GROUP_CHOICES = [
    (group, option)
    for group in ["model", "trainer", "logger", "callbacks", "debug", "experiment", "hparams_search", "paths"]
    for option in options(group)
    if not (CONF / group / option).is_dir()
]


@pytest.mark.parametrize(("group", "option"), GROUP_CHOICES, ids=[f"{g}={o}" for g, o in GROUP_CHOICES])
def test_train_group_option_composes_and_resolves(group, option, tmp_path, monkeypatch):
    # v2 fine-tune recipes read the official checkpoint paths from the environment unless overridden
    for variable in ("GSV_V2_GPT_CKPT", "GSV_V2_S2G", "GSV_V2_S2D"):
        monkeypatch.setenv(variable, str(tmp_path / f"{variable}.pth"))
    cfg = compose_train([f"{group}={option}"], tmp_path)
    resolved = resolve_without_hydra(cfg)
    assert resolved["trainer"]["_target_"].endswith("Trainer")
    assert {"model", "data", "trainer", "paths"} <= set(resolved)


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_launcher_composes(launcher, tmp_path):
    cfg = compose_train([f"hydra/launcher={launcher}"], tmp_path)
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher_cfg["_target_"].startswith("hydra_plugins.hydra_submitit_launcher")
    if launcher == "slurm":
        assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node == 8


@pytest.mark.parametrize("stage", stages())
def test_data_follows_model(stage, tmp_path):
    cfg = compose_train([f"model={stage}"], tmp_path)
    assert cfg.hydra.runtime.choices["data"] == stage


@pytest.mark.parametrize("typo", ["trainer.max_stepz=3", "seeed=1", "callbacks.model_checkpoint.every_n=2"])
def test_misspelled_key_fails_at_composition(typo, tmp_path):
    with pytest.raises(ConfigCompositionException):
        compose_train([typo], tmp_path)


@pytest.mark.parametrize("trainer", ["cpu", "ddp_cpu"])
@pytest.mark.parametrize("logger", options("logger"))  # tensorboard is in the dev extra: every logger preset runs
def test_trainer_callbacks_loggers_instantiate(trainer, logger, tmp_path):
    cfg = compose_train([f"trainer={trainer}", f"logger={logger}"], tmp_path)
    callbacks = instantiate_callbacks(cfg.callbacks)
    loggers = instantiate_loggers(cfg.logger)
    built = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert built.world_size == (2 if trainer == "ddp_cpu" else 1)
    assert type(built.strategy.checkpoint_io).__name__ == "AtomicCheckpointIO"
    assert len(callbacks) >= 8


def test_no_logger_is_tilde_logger(tmp_path):
    """README and conf/train.yaml document ``~logger`` for "log nothing" (Hydra cannot set a config group to null:
    ``logger=null`` stops at composition): the group is gone and the Trainer gets no logger."""
    cfg = compose_train(["~logger"], tmp_path)
    assert "logger" not in cfg and instantiate_loggers(cfg.get("logger")) == []
    built = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=instantiate_loggers(cfg.get("logger")))
    assert built.loggers == []


@pytest.mark.parametrize("stage", stages())
def test_tiny_presets_instantiate_model_and_datamodule(stage, tmp_path):
    cfg = compose_train([f"model={stage}", f"model/{stage}@model.net=tiny"], tmp_path)
    model = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert callable(getattr(datamodule, "load_state_dict", None))


def _top_level_configs() -> list[str]:
    return sorted(p.stem for p in CONF.glob("*.yaml"))


def _resolve_leaves(node: DictConfig | ListConfig, path: str = "") -> tuple[int, list[str]]:
    """Resolve every leaf; only ``???`` values and interpolations of them may stay unresolved (their paths are
    returned). Any other failure — a broken resolver, a typo in an interpolation — raises."""
    resolved, missing = 0, []
    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        where = f"{path}.{key}" if path else str(key)
        if where == "hydra":
            continue
        if OmegaConf.is_missing(node, key):
            missing.append(where)
            continue
        try:
            value = node[key]
        except InterpolationToMissingValueError:
            missing.append(where)
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            count, more = _resolve_leaves(value, where)
            resolved, missing = resolved + count, missing + more
        else:
            resolved += 1
    return resolved, missing


@pytest.mark.parametrize("config_name", _top_level_configs())
def test_every_top_level_config_composes(config_name, tmp_path):
    """Composes and resolves every value except those the user must give (``???`` and what interpolates them)."""
    cfg = compose_train([], tmp_path, config_name=config_name)
    resolved, missing = _resolve_leaves(cfg)
    assert resolved > 0
    assert all(not path.startswith("hydra") for path in missing)

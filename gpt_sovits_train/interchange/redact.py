"""Keep secrets passed on the command line (``+hf_token=...``) out of every config file and logger we write.

The rule (one place, documented in ``docs/security.md``): a key is secret when the *last word* of its name — words
split on ``_``, ``-``, ``.``, spaces and camelCase — is ``token``, ``secret``, ``password``, ``passwd``,
``passphrase``, ``apikey``, ``credential(s)``, or ``key`` preceded by another word. So ``hf_token``,
``WANDB_API_KEY``, ``aws_secret_access_key``, ``apiKey`` and ``db_password`` are redacted, while the framework's
own non-secret names stay readable: ``max_tokens`` (plural), ``token_source`` and ``codec_tokenizer`` (the last word
is not ``token``), ``exclude_keys``, ``monitor`` and a bare ``key``. Any non-null value under a secret key (also a
nested mapping or a number) becomes :data:`REDACTED`; Hydra override strings (``+hf_token=abc``) are redacted the
same way. Only the *written copies* change: the running job still sees the real value.

Writers that go through here: Hydra's ``.hydra/{config,hydra,overrides}.yaml`` (:class:`RedactingHydraCallback`,
with ``hydra.output_subdir: null`` so Hydra never writes the plain ones), ``resolved_config.yaml`` and every
logger's hyperparameters (``training.run``), the W&B run name (``gst_run_name``) and command-line metadata
(:func:`redacted_argv`), ``gst-export``'s config files,
``gst-publish``'s ``config.yaml`` and the clone bundle's ``config.yaml``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)

REDACTED = "<redacted>"
SECRET_LAST_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "passphrase", "apikey", "credential", "credentials"}
)
_WORD_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")
_OVERRIDE = re.compile(r"^(?P<prefix>[+~]{0,2})(?P<key>[^=]+)=(?P<value>.*)$", re.DOTALL)
_logged: set[str] = set()


def is_secret_key(name: Any) -> bool:
    """Whether a config key names a secret (see the module docstring for the exact rule)."""
    words = [w.lower() for w in _WORD_SPLIT.split(str(name)) if w]
    if not words:
        return False
    last = words[-1]
    return last in SECRET_LAST_WORDS or (last == "key" and len(words) > 1)


def redact_override(override: str) -> tuple[str, str | None]:
    """``+hf_token=abc`` → (``+hf_token=<redacted>``, ``hf_token``); other overrides pass through unchanged."""
    match = _OVERRIDE.match(override)
    if match is None:
        return override, None
    key = match["key"].strip()
    if not is_secret_key(key.split(".")[-1].split("@")[0]) or match["value"] in ("", "null"):
        return override, None
    return f"{match['prefix']}{key}={REDACTED}", key


def redact_override_list(text: str) -> tuple[str, list[str]]:
    """Hydra's ``override_dirname`` (``a=1,hf_token=abc``) with secret values replaced."""
    parts, found = [], []
    for item in text.split(","):
        redacted, key = redact_override(item)
        parts.append(redacted)
        found += [key] if key else []
    return ",".join(parts), found


def _redact(value: Any, found: list[str], path: str) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if is_secret_key(key) and item is not None:
                out[key] = REDACTED
                found.append(where)
            elif str(key) == "override_dirname" and isinstance(item, str):
                out[key], keys = redact_override_list(item)
                found += keys
            else:
                out[key] = _redact(item, found, where)
        return out
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                item, key = redact_override(item) if "=" in item else (item, None)
                found += [key] if key else []
                items.append(item)
            else:
                items.append(_redact(item, found, f"{path}[{index}]"))
        return items
    return value


def redact(config: Any, what: str = "config") -> Any:
    """A plain-container copy of ``config`` (dict/list/DictConfig, unresolved interpolations kept) with secret
    values replaced; says once per process and file kind which keys were redacted."""
    if isinstance(config, (DictConfig, ListConfig)):
        config = OmegaConf.to_container(config, resolve=False)
    found: list[str] = []
    cleaned = _redact(config, found, "")
    if found and not set(found) <= _logged:  # say it once per process, not once per file
        _logged.update(found)
        log.info(
            "redacted secret-looking values of %s in every config file and logger we write (first: %s; the "
            "running job keeps the real values)",
            sorted(set(found)),
            what,
        )
    return cleaned


def redacted_yaml(config: Any, what: str = "config") -> str:
    """YAML text of :func:`redact` (interpolations left as written, like Hydra's own copies)."""
    return OmegaConf.to_yaml(OmegaConf.create(redact(config, what)))


@contextlib.contextmanager
def redacted_argv() -> Iterator[None]:
    """``sys.argv`` with secret overrides redacted while the block runs (loggers such as W&B copy the command line
    into their run metadata when they start); restored afterwards, so re-launched DDP ranks get the real values."""
    saved = sys.argv[:]
    sys.argv = [saved[0], *(redact_override(arg)[0] for arg in saved[1:])] if saved else saved
    try:
        yield
    finally:
        sys.argv = saved


class RedactingHydraCallback(Callback):
    """Hydra callback that writes ``<run dir>/.hydra/{config,hydra,overrides}.yaml`` with secrets redacted.

    Hydra writes those files itself before any callback runs, so the configs using this callback set
    ``hydra.output_subdir: null`` and this callback writes the same three files in the same place instead.
    """

    def __init__(self, subdir: str = ".hydra") -> None:
        self.subdir = subdir

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        out = Path(config.hydra.runtime.output_dir) / self.subdir
        out.mkdir(parents=True, exist_ok=True)
        task = {k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"}
        hydra_node = {"hydra": OmegaConf.to_container(config.hydra, resolve=False)}
        (out / "config.yaml").write_text(redacted_yaml(task, "Hydra job config"), encoding="utf-8")
        (out / "hydra.yaml").write_text(redacted_yaml(hydra_node, "Hydra job config"), encoding="utf-8")
        overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        (out / "overrides.yaml").write_text(redacted_yaml(overrides, "Hydra job config"), encoding="utf-8")

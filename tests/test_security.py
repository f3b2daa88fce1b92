"""Every place the package loads something that could run code is listed in docs/security.md and protected.

The scan walks the package's syntax trees (docstrings and comments do not count) for calls that deserialize or
instantiate: ``torch.load``, ``pickle``, ``hydra.utils.instantiate``, YAML loaders, ``np.load``,
``from_pretrained``. A new call site fails this test until it is added to :data:`ENTRY_POINTS` and to the security
note, so one cannot be added unprotected by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gpt_sovits_train"
SECURITY_NOTE = REPO / "docs" / "security.md"

#: (module path under gpt_sovits_train/, kind) → how it is protected (the note says the same in words).
ENTRY_POINTS: dict[tuple[str, str], str] = {
    ("interchange/safe_load.py", "torch.load"): "weights_only=True; inert allow-list pass for droppable parts",
    ("interchange/safe_load.py", "pickle"): "the inert unpickler: non-allow-listed globals become placeholders",
    ("features/codec.py", "torch.load"): "weights_only=True",
    ("features/speaker.py", "torch.load"): "weights_only=True",
    ("features/ssl.py", "from_pretrained"): "transformers, no trust_remote_code",
    ("features/bert.py", "from_pretrained"): "transformers, no trust_remote_code",
    ("interchange/checkpoints.py", "yaml"): "OmegaConf.load (safe YAML) then check_travelling_config",
    ("interchange/hub.py", "yaml"): "yaml.safe_load of resolved_config.yaml; published as data, never instantiated",
    ("training/sweep.py", "yaml"): "yaml.safe_load of Hydra's own overrides.yaml in the sweep folder",
    ("inference/loading.py", "instantiate"): "config checked by check_travelling_config first",
    ("inference/factory.py", "instantiate"): "user config, or a bundle config checked by load_bundle",
    ("text/en_oov.py", "np.load"): "packaged file, allow_pickle stays False",
    ("data/schema.py", "np.load"): "allow_pickle=False",
    ("data/prepare.py", "instantiate"): "the user's own config",
    ("training/run.py", "instantiate"): "the user's own config",
    ("training/instantiate.py", "instantiate"): "the user's own config",
    ("clone/workflow.py", "instantiate"): "the user's own config",
    ("cli/evaluate.py", "instantiate"): "the user's own config",
    ("benchmarks/scaling.py", "instantiate"): "the user's own config",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kind(name: str) -> str | None:
    last = name.split(".")[-1]
    if name.endswith("torch.load"):
        return "torch.load"
    if name.split(".")[0] == "pickle" or (last in {"Unpickler", "loads"} and "pickle" in name):
        return "pickle"
    if last == "instantiate":
        return "instantiate"
    if name.startswith(("yaml.", "OmegaConf.")) and last in {"load", "safe_load", "full_load", "unsafe_load"}:
        return "yaml"
    if name in {"np.load", "numpy.load"}:
        return "np.load"
    if last == "from_pretrained":
        return "from_pretrained"
    return None


def _call_sites() -> dict[tuple[str, str], list[ast.AST]]:
    found: dict[tuple[str, str], list[ast.AST]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Call):
                names.append(_dotted(node.func))
            elif isinstance(node, ast.ClassDef):
                names += [_dotted(base) for base in node.bases]
            for name in names:
                kind = _kind(name)
                if kind:
                    found.setdefault((module, kind), []).append(node)
    return found


def test_every_loading_call_site_is_documented_and_listed() -> None:
    found = _call_sites()
    unlisted = sorted(set(found) - set(ENTRY_POINTS))
    assert not unlisted, f"new loading call sites, document and protect them (docs/security.md): {unlisted}"
    stale = sorted(set(ENTRY_POINTS) - set(found))
    assert not stale, f"listed entry points that no longer exist (update the list and docs/security.md): {stale}"
    note = SECURITY_NOTE.read_text(encoding="utf-8")
    missing = sorted({module for module, _ in ENTRY_POINTS if module not in note})
    assert not missing, f"docs/security.md does not mention {missing}"


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return (
                ast.literal_eval(keyword.value) if isinstance(keyword.value, ast.Constant) else _dotted(keyword.value)
            )
    return None


def test_torch_load_is_weights_only_except_the_inert_pass() -> None:
    for (module, kind), nodes in _call_sites().items():
        if kind != "torch.load":
            continue
        for call in nodes:
            assert isinstance(call, ast.Call)
            inert = _keyword(call, "pickle_module") == "_InertPickleModule" and module == "interchange/safe_load.py"
            assert _keyword(call, "weights_only") is True or inert, (
                f"{module}:{call.lineno} torch.load not weights_only"
            )


def test_no_unsafe_yaml_or_pickling_numpy() -> None:
    for (module, kind), nodes in _call_sites().items():
        for call in nodes:
            if kind == "yaml":
                assert _dotted(call.func).split(".")[-1] in {"load", "safe_load"}, f"{module}:{call.lineno}"
                assert not _dotted(call.func).startswith("yaml.load"), f"{module}:{call.lineno} yaml.load"
            if kind == "np.load":
                assert _keyword(call, "allow_pickle") in (None, False), f"{module}:{call.lineno} allow_pickle"
            if kind == "from_pretrained":
                assert _keyword(call, "trust_remote_code") in (None, False), f"{module}:{call.lineno}"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("hf_token", True),
        ("HF_TOKEN", True),
        ("wandb_api_key", True),
        ("apiKey", True),
        ("token", True),
        ("aws_secret_access_key", True),
        ("db_password", True),
        ("secret", True),
        ("client-credentials", True),
        ("max_tokens", False),
        ("token_source", False),
        ("codec_tokenizer", False),
        ("exclude_keys", False),
        ("key", False),
        ("monitor", False),
        ("sort_keys", False),
        ("keys", False),
    ],
)
def test_secret_key_rule(key: str, secret: bool) -> None:
    from gpt_sovits_train.interchange.redact import is_secret_key

    assert is_secret_key(key) is secret


def test_redaction_of_configs_and_overrides() -> None:
    from gpt_sovits_train.interchange.redact import REDACTED, redact, redact_override

    config = {
        "hf_token": "abc",
        "model": {"api_key": 123, "max_tokens": 5, "token_source": "ssl"},
        "overrides": ["+hf_token=abc", "model.lr=1"],
        "override_dirname": "a=1,hf_token=abc",
        "password": None,
    }
    assert redact(config) == {
        "hf_token": REDACTED,
        "model": {"api_key": REDACTED, "max_tokens": 5, "token_source": "ssl"},
        "overrides": [f"+hf_token={REDACTED}", "model.lr=1"],
        "override_dirname": f"a=1,hf_token={REDACTED}",
        "password": None,
    }
    assert redact_override("++logger.wandb.api_key=xyz")[0] == f"++logger.wandb.api_key={REDACTED}"


@pytest.mark.parametrize("name", ["x;rm -rf ~;.tar", "../../etc/passwd", "/abs/train-0.tar", "a$(id).tar", ""])
def test_manifest_shard_names_cannot_inject_into_pipe_commands(tmp_path: Path, name: str) -> None:
    from gpt_sovits_train.data.datamodule import shard_url

    with pytest.raises(ValueError, match="refused shard name"):
        shard_url(tmp_path, "pipe:aws s3 cp s3://bucket/{shard} -", name)
    assert shard_url(tmp_path, None, "train/train-000001.tar") == str(tmp_path / "train" / "train-000001.tar")

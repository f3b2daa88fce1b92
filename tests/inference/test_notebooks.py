"""The notebooks execute top to bottom on the committed demo corpus (nbclient, real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(notebook: Path, parameters: dict[str, object], workdir: Path) -> object:
    nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e .[dev])")
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e .[dev])")
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": workdir}})
    client.execute()
    return nb


@pytest.mark.slow
def test_dataset_explorer_runs_on_demo_corpus(tmp_path: Path) -> None:
    nb = _run(
        REPO / "notebooks" / "dataset_explorer.ipynb",
        {"LIST_PATH": str(REPO / "data" / "demo" / "demo.list"), "DATASET_DIR": None, "MAX_LISTEN": 2},
        tmp_path,
    )
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "72 utterances" in printed
    assert "speaker   ava" in printed
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # histogram + mel plots


@pytest.mark.slow
def test_synthesis_walkthrough_runs_on_tiny_models(ref_dir: Path, tmp_path: Path) -> None:
    nb = _run(
        REPO / "notebooks" / "synthesis_walkthrough.ipynb",
        {
            "REFERENCE_DIR": str(ref_dir),
            "WORKDIR": str(tmp_path / "artifacts"),
            "REFERENCE_AUDIO": str(REPO / "data" / "demo" / "ava" / "ava_000.flac"),
            "REFERENCE_TEXT": "The morning train to the coast leaves at seven fifteen.",
            "TEXT": "Good morning. 今天天气很好。",
        },
        tmp_path,
    )
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "RTF" in printed and "AI-generated" in printed and "first chunk after" in printed
    assert (tmp_path / "artifacts" / "walkthrough.wav").is_file()

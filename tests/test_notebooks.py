"""The Colab notebooks in notebooks/: committed stripped, in sync with their percent sources
(notebooks/build.py --check), and executed top to bottom with tiny parameters (a failing cell
fails the test).

The notebooks share one work directory, in the order a user runs them: the tuning and export
notebooks reuse the synthetic CAMUS and the model of the training notebook. Each one also
runs alone (it then writes the data, or trains a model, itself). What their shared cells call
(keras_runet.notebook) is tested in tests/test_notebook_helpers.py.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ("01_train_runet.ipynb", "02_tune_dil_shift.ipynb", "03_export_and_serve.ipynb")

# Tiny values for the parameters cells: each notebook runs in about a minute on 2 CPU cores.
TINY = {
    "RUNET_NB_CAMUS_DIR": "",
    "RUNET_NB_PATIENTS": "10",
    "RUNET_NB_SCALE": "0.3",
    "RUNET_NB_IMAGE_SIZE": "64",
    "RUNET_NB_WIDTH": "0.25",
    "RUNET_NB_EPOCHS": "2",
    "RUNET_NB_BATCH_SIZE": "8",
    "RUNET_NB_MAX_TRIALS": "2",
    "RUNET_NB_TUNE_EPOCHS": "1",
}
CELL_TIMEOUT_S = 300


def _generator():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOK_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_committed_without_outputs():
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{name}: cell {cell.id} has outputs"
                assert cell.execution_count is None, f"{name}: cell {cell.id} was executed"
        assert nb.metadata["kernelspec"]["name"] == "python3"


def test_notebooks_are_in_sync_with_their_sources():
    generator = _generator()
    assert sorted(generator.NOTEBOOKS) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        committed = (NOTEBOOK_DIR / name).read_text(encoding="utf-8")
        assert committed == generator.render(name), (
            f"notebooks/{name} differs from what notebooks/build.py writes from "
            f"notebooks/{Path(name).stem}.py: run `python notebooks/build.py`"
        )
    assert generator.main(["--check"]) == 0


def test_build_check_names_the_stale_notebook(tmp_path, capsys):
    generator = _generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert generator.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / NOTEBOOKS[1]
    stale.write_text(stale.read_text(encoding="utf-8").replace("dil", "dilation", 1))
    (tmp_path / NOTEBOOKS[2]).unlink()
    capsys.readouterr()
    assert generator.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert NOTEBOOKS[1] in err and NOTEBOOKS[2] in err and NOTEBOOKS[0] not in err


def test_build_reads_the_percent_format():
    cells = _generator().parse_cells(
        "# %% [markdown]\n# # Title\n#\n# Text.\n\n"
        '# %% tags=["parameters"]\nEPOCHS = 30  # @param {type:"integer"}\n\n\n'
        "# %%\ndef f():\n    return 1\n\n\nf()\n"
    )
    assert cells == [
        ("markdown", "# Title\n\nText.", []),
        ("code", 'EPOCHS = 30  # @param {type:"integer"}', ["parameters"]),
        ("code", "def f():\n    return 1\n\n\nf()", []),
    ]
    for bad in ("A = 1\n# %%\nB = 2\n", "# %% [markdown]\nnot a comment\n", "# %%x\n"):
        with pytest.raises(ValueError):
            _generator().parse_cells(bad)


def test_notebook_cells_get_stable_ids_and_colab_metadata():
    for name, gpu in _generator().NOTEBOOKS.items():
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        stem = name.split("_")[0]
        assert [cell.id for cell in nb.cells] == [f"{stem}-{i:02d}" for i in range(len(nb.cells))]
        assert nb.metadata["colab"] == (
            {"provenance": [], "toc_visible": True} | ({"gpuType": "T4"} if gpu else {})
        )
        assert ("accelerator" in nb.metadata) == gpu
        parameters = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
        assert len(parameters) == 1 and "# @param" in parameters[0].source
        assert "notebook.override_parameters(globals())" in parameters[0].source


def test_notebook_readme_has_a_colab_badge_per_notebook():
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    generator = _generator()
    for name in NOTEBOOKS:
        assert generator.colab_url(name) in readme
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        assert generator.colab_url(name) in nb.cells[0].source


def test_notebooks_are_guarded_for_colab():
    for name in NOTEBOOKS:
        source = "\n".join(c.source for c in nbformat.read(NOTEBOOK_DIR / name, as_version=4).cells)
        assert 'IN_COLAB = "google.colab" in sys.modules' in source
        lines = source.splitlines()
        install = [i for i, line in enumerate(lines) if '"pip", "install"' in line]
        assert len(install) == 1, f"{name}: one install line"
        guard = next(line for line in reversed(lines[: install[0]]) if line.startswith("if "))
        assert guard == 'if IN_COLAB and importlib.util.find_spec("keras_runet") is None:', (
            f"{name}: the install is not guarded"
        )
        # Drive is mounted by keras_runet.notebook.locate_camus, in Colab only.
        assert "drive.mount(" not in source and "%pip" not in source


def _install_cell(name: str) -> str:
    cells = nbformat.read(NOTEBOOK_DIR / name, as_version=4).cells
    return next(c.source for c in cells if '"pip", "install"' in c.source)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_install_cell_installs_only_what_is_missing_and_says_when_to_restart(
    name, monkeypatch, capsys
):
    """The cell run as in Colab (google.colab imported), pip replaced by a fake that changes
    the versions it is told to: no install when keras_runet is there; after an install, a
    restart is asked for exactly when a preinstalled library's version changed."""
    import importlib.metadata
    import subprocess
    import sys
    import types

    source = _install_cell(name)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    versions = {"tensorflow": "2.20.0", "keras": "3.13.2", "numpy": "2.0.2"}
    calls, state = [], {}

    def version(package):
        if package not in versions:
            raise importlib.metadata.PackageNotFoundError(package)
        return versions[package]

    def run(cmd, check):  # the pip call
        calls.append(cmd)
        versions.update(state["upgrade"])

    real_find_spec = importlib.util.find_spec

    def find_spec(module, *args):
        if module == "keras_runet":
            return object() if state["present"] else None
        return real_find_spec(module, *args)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for present, upgrade, expected in (
        (True, {}, "nothing to do"),
        (False, {}, "no restart needed"),
        (False, {"keras": "3.15.1"}, "replaced keras 3.13.2 -> 3.15.1. Restart the session"),
    ):
        calls.clear()
        state.update(present=present, upgrade=upgrade)
        exec(compile(source, name, "exec"), {"__name__": "__main__"})
        assert len(calls) == (0 if present else 1), (name, present)
        assert expected in capsys.readouterr().out, (name, upgrade)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    """One work directory for the three notebooks, as when a user runs them in order."""
    return tmp_path_factory.mktemp("notebooks")


def _execute(name: str, work_dir: Path, monkeypatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    for key, value in TINY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RUNET_NB_WORK_DIR", str(work_dir / "work"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("RUNET_NB_MODEL", raising=False)
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    cwd = work_dir / "cwd"
    cwd.mkdir(exist_ok=True)
    # The kernel is the python3 kernelspec that ipykernel installs into the environment;
    # jupyter_client starts it with this interpreter (sys.executable).
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(cwd)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback
    print(f"{name}: {time.perf_counter() - start:.0f} s")
    return nb


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(out["data"].get("text/markdown", out["data"].get("text/plain", "")))
    return "\n".join(parts)


def _image_count(nb) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_notebook_01_train_runs_top_to_bottom(work_dir, monkeypatch):
    nb = _execute("01_train_runet.ipynb", work_dir, monkeypatch)
    text = _outputs_text(nb)
    assert "Using a synthetic CAMUS of 10 patients" in text
    assert "## Geometric performance and outliers" in text  # the evaluation tables
    assert "| runet | coarse |" in text and "| runet | segmentation |" in text
    assert "outliers among" in text
    # examples, learning curves, HD distribution, best cases, worst cases
    assert _image_count(nb) >= 5
    run_dir = work_dir / "work" / "train"
    for name in ("best.keras", "last.keras", "state.json", "history.csv"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "evaluation" / "report.md").exists()


@pytest.mark.slow
def test_notebook_02_tune_runs_top_to_bottom(work_dir, monkeypatch):
    nb = _execute("02_tune_dil_shift.ipynb", work_dir, monkeypatch)
    text = _outputs_text(nb)
    assert f"{TINY['RUNET_NB_MAX_TRIALS']} trials completed" in text
    assert "| Trial | dil | shift |" in text and "★" in text
    assert "best: dil=" in text and "test images" in text
    assert _image_count(nb) >= 1  # the objective over (dil, shift)
    study = work_dir / "work" / "tuning" / "fold1"
    for name in ("results.csv", "best.json", "objective.png", "best.keras"):
        assert (study / name).exists(), name


@pytest.mark.slow
def test_notebook_03_export_runs_top_to_bottom(work_dir, monkeypatch):
    nb = _execute("03_export_and_serve.ipynb", work_dir, monkeypatch)
    text = _outputs_text(nb)
    assert "serving_default" in text and "serving_bytes" in text
    assert "docker run -p 8501:8501" in text
    versions = list((work_dir / "work" / "export" / "runet").glob("[0-9]*/saved_model.pb"))
    assert versions, "no exported version"

"""Write the notebooks of this folder from their percent sources.

Each notebook is a plain Python file in the percent format (``01_train_runet.py``: a
``# %% [markdown]`` line starts a Markdown cell whose lines are comments, a ``# %%`` line a
code cell, ``# %% tags=["parameters"]`` one with tags), linted and formatted by ruff like
any module. The ``.ipynb`` beside it is generated: edit the ``.py``, then run

    python notebooks/build.py           # rewrite the notebooks
    python notebooks/build.py --check   # exit 1, naming them, if notebooks are out of date

and commit both. The notebooks are written without outputs or execution counts, with cell
ids made of the notebook's number and the cell's index and with Colab's metadata, so the
same source always gives the same bytes (tests/test_notebooks.py runs the check). The
format is jupytext's: ``jupytext --to notebook`` reads these files too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = "keras-runet/keras-runet"
BRANCH = "main"

# The notebooks, and whether Colab should give them a GPU.
NOTEBOOKS = {
    "01_train_runet.ipynb": True,
    "02_tune_dil_shift.ipynb": True,
    "03_export_and_serve.ipynb": False,
}

_CELL = re.compile(r"^# %%(?: \[(?P<kind>markdown)\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def colab_url(name: str) -> str:
    """The "Open in Colab" address of notebook ``name``."""
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{name}"


def source_path(name: str) -> Path:
    """The percent source of notebook ``name``."""
    return HERE / Path(name).with_suffix(".py").name


def parse_cells(text: str) -> list[tuple[str, str, list[str]]]:
    """The ``(kind, source, tags)`` of each cell of a percent file.

    >>> parse_cells('# %% [markdown]\\n# # Title\\n#\\n# Text.\\n\\n# %% tags=["x"]\\nA = 1\\n')
    [('markdown', '# Title\\n\\nText.', []), ('code', 'A = 1', ['x'])]
    """
    cells, kind, tags, lines = [], None, [], []

    def close():
        if kind is None:
            if "".join(lines).strip():
                raise ValueError("text before the first '# %%' line")
            return
        source = "\n".join(lines).strip("\n")
        if kind == "markdown":
            rows = source.split("\n")
            if any(row and not (row == "#" or row.startswith("# ")) for row in rows):
                raise ValueError(f"a Markdown cell line is not a comment: {source!r}")
            source = "\n".join(row[2:] for row in rows)
        cells.append((kind, source, tags))

    for line in text.splitlines():
        match = _CELL.match(line)
        if line.startswith("# %%") and not match:
            raise ValueError(f"not a cell marker: {line!r}")
        if match:
            close()
            kind = match["kind"] or "code"
            tags = json.loads(match["tags"]) if match["tags"] else []
            lines = []
        else:
            lines.append(line)
    close()
    return cells


def build_notebook(cells, gpu: bool, stem: str) -> nbformat.NotebookNode:
    """A notebook of ``cells`` (no outputs, fixed ids), with Colab's metadata."""
    nb = nbformat.v4.new_notebook()
    for i, (kind, source, tags) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"{stem}-{i:02d}"
        if tags:
            cell["metadata"]["tags"] = list(tags)
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
        nb.metadata["colab"]["gpuType"] = "T4"
    return nb


def render(name: str) -> str:
    """The text of notebook ``name`` as this script writes it."""
    cells = parse_cells(source_path(name).read_text(encoding="utf-8"))
    nb = build_notebook(cells, NOTEBOOKS[name], name.split("_")[0])
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the notebooks are up to date"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = args.out / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)} (edit the .py, then run python notebooks/build.py)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

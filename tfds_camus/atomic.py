"""Atomic file writes, declared once for both packages (``keras_runet`` imports it from here).

A file written through these helpers is either absent, the old file, or the whole new file:
the content goes to a temporary file beside the target (same folder, so the same file
system) and is moved over the target with :func:`os.replace`. A kill or an exception in
the middle leaves no partial target and no temporary file behind (the exception removes
it; a kill leaves at most a hidden ``.NAME.*.tmp`` file, never a half-written ``NAME``).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> path = write_json(folder / "state.json", {"epoch": 3})
>>> json.loads(path.read_text())
{'epoch': 3}
>>> sorted(p.name for p in folder.iterdir())  # no temporary file left
['state.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_bytes", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path to write to; it replaces ``path`` when the block ends without error.

    Args:
        path: the file to (re)place; its folder is created.
        suffix: the temporary file's suffix (default: ``path``'s own suffixes + ``.tmp``).
            Writers that choose the format from the suffix need the real one, e.g.
            ``model.save`` wants ``.keras``, ``np.savez`` ``.npz``, ``savefig`` ``.png``.

    Yields:
        The temporary path (it does not exist yet unless the writer creates it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) + ".tmp"
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers that refuse an existing file (zip, savez) get a fresh path
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_json(path: str | os.PathLike, data, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (NaN allowed, newline at the end) atomically; returns ``path``."""
    return write_text(path, json.dumps(data, indent=indent, allow_nan=True) + "\n")

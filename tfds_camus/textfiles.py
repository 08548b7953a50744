"""The text files of a CAMUS download: ``Info_*.cfg`` and the 2023 release's split lists.

Both are read tolerantly (UTF-8 with or without BOM, else Latin-1; CRLF or LF); every error
is a :class:`~tfds_camus.errors.CamusFormatError` that starts with the file's path.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from tfds_camus.errors import CamusFormatError
from tfds_camus.layout import Layout, detect_layout
from tfds_camus.vocabulary import ED, ES, PATIENT_ID_RE, SPLIT_NAMES

# Keys of Info_*.cfg that every reader result carries (NaN when the file lacks them).
# Original release: LVedv, LVesv, LVef. 2023 release: EF (and FrameRate).
STANDARD_INFO_KEYS = (
    ED,
    ES,
    "NbFrame",
    "Sex",
    "Age",
    "ImageQuality",
    "LVedv",
    "LVesv",
    "LVef",
    "EF",
    "FrameRate",
)
_INT_KEYS = (ED, ES, "NbFrame")


# --- text files ------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """A text file as str (UTF-8 with or without BOM, else Latin-1), naming it on failure."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CamusFormatError(f"{path}: cannot read: {e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_split_lists(manual_dir: str | os.PathLike | Layout) -> dict[str, list[str]]:
    """Reads the 2023 release's ``database_split/subgroup_*.txt``.

    Returns:
        ``{"subgroup_training": [...], "subgroup_validation": [...], "subgroup_testing": [...]}``
        for the files present; ``{}`` if there is no ``database_split/`` folder.
    """
    layout = detect_layout(manual_dir)
    if layout.split_dir is None:
        return {}
    lists = {}
    for name in SPLIT_NAMES:
        path = layout.split_dir / f"{name}.txt"
        if not path.is_file():
            continue
        ids = [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]
        bad = [i for i in ids if not PATIENT_ID_RE.match(i)]
        if bad:
            raise CamusFormatError(f"{path}: not patient ids: {bad[:5]}")
        lists[name] = ids
    return lists


def _parse_value(key: str, value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    if key in _INT_KEYS and number.is_integer():
        return int(number)
    return number


def read_info_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """Reads an ``Info_2CH.cfg`` / ``Info_4CH.cfg`` file, tolerantly.

    Lines are ``Key: value`` (``=`` is accepted too); CRLF or LF line endings; blank lines and
    lines starting with ``#`` are ignored. Numbers become ``int`` (ED, ES, NbFrame) or
    ``float``; other values stay strings. Unknown keys are kept. Every key of
    :data:`STANDARD_INFO_KEYS` is present in the result, NaN where the file lacks it.

    Raises:
        CamusFormatError: if the file cannot be read, or a line is not ``Key: value``.
    """
    path = Path(os.fspath(path))
    info: dict[str, Any] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([^:=]+?)\s*[:=]\s*(.*)$", line)
        if match is None:
            raise CamusFormatError(f"{path}: line {number} is not 'Key: value': {line!r}")
        key, value = match.group(1).strip(), match.group(2).strip()
        info[key] = _parse_value(key, value)
    for key in STANDARD_INFO_KEYS:
        info.setdefault(key, math.nan)
    return info

"""The rows of ``runet predict``: the anatomical criteria of each image or frame, the
suspicious-shape flag, ``predictions.csv`` and what a rerun may reuse of it.

See :mod:`keras_runet.predict`; every public name here is also importable from there.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation import (
    OutlierThresholds,
    anatomical_outlier,
    quality_score,
    shape_metrics,
)
from keras_runet.predict.images import image_format, read_label_map
from tfds_camus.atomic import atomic_path
from tfds_camus.vocabulary import STRUCTURES

logger = logging.getLogger("keras_runet.predict")

CSV_COLUMNS = (
    "file",
    "frame",  # 0-based position of the frame in a sequence; empty for a single image
    "frames",  # frames of the sequence; empty for a single image
    "status",
    "error",
    "label_map",
    "overlay",
    "probabilities",
    "area_plot",
    "height",
    "width",
    "spacing_row_mm",
    "spacing_col_mm",
    "spacing_source",  # "file", "assumed" (png_spacing), or empty: pixel units
    *(f"{s}_{m}" for s in STRUCTURES for m in ("area_px", "area_mm2", "convexity", "simplicity")),
    "suspicious_shape",
    "suspicious_reasons",
    "quality_score",
    "shape_convention",  # how Sp / Cx were measured (OutlierThresholds.convention)
)


def _convention_key(thresholds: OutlierThresholds | None) -> str:
    """The ``shape_convention`` cell: the convention's name, else its compact JSON."""
    conv = (thresholds or OutlierThresholds()).convention
    return conv.name or json.dumps(conv.to_dict(), sort_keys=True, separators=(",", ":"))


def _flag(row: dict, thresholds: OutlierThresholds | None) -> dict:
    """Set the flag, its reasons and the quality score of a row from its criteria."""
    flagged, reasons = anatomical_outlier(row, thresholds)
    row["suspicious_shape"] = bool(flagged)
    row["suspicious_reasons"] = ";".join(reasons)
    row["quality_score"] = quality_score(row, thresholds)
    row["shape_convention"] = _convention_key(thresholds)
    return row


def shape_criteria(
    label_map: np.ndarray, spacing=None, thresholds: OutlierThresholds | None = None
) -> dict:
    """The anatomical criteria of one predicted label map (no ground truth needed).

    Args:
        label_map: 2D integer labels (0..3) on the native grid.
        spacing: ``(row_mm, col_mm)`` (simplicity is measured on square pixels), or None.
        thresholds: :class:`~keras_runet.evaluation.OutlierThresholds` (default: Table I).

    Returns:
        ``{structure}_area_px``, ``{structure}_area_mm2`` (None without ``spacing``),
        ``{structure}_convexity``, ``{structure}_simplicity`` for LVendo, LVepi and LA,
        ``suspicious_shape`` (an anatomical outlier by the thresholds: a convexity or
        simplicity below the expert minimum, or a missing structure),
        ``suspicious_reasons`` (``;``-separated), ``quality_score``
        (:func:`keras_runet.evaluation.quality_score`, ``< 0`` exactly when suspicious)
        and ``shape_convention`` (the thresholds' measurement convention).
    """
    lm = np.asarray(label_map)
    convention = (thresholds or OutlierThresholds()).convention  # how Sp / Cx are measured
    pixel_mm2 = None if spacing is None else float(spacing[0]) * float(spacing[1])
    row = {}
    for name, labels in STRUCTURES.items():
        mask = np.isin(lm, labels)
        n = int(np.count_nonzero(mask))
        row[f"{name}_area_px"] = n
        row[f"{name}_area_mm2"] = None if pixel_mm2 is None else n * pixel_mm2
        cx, sp = shape_metrics(mask, spacing, convention)
        row[f"{name}_convexity"], row[f"{name}_simplicity"] = cx, sp
    return _flag(row, thresholds)


def _fmt_cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_columns_csv(rows: Sequence[Mapping], path, columns: Sequence[str]) -> Path:
    """Write ``rows`` as a CSV of ``columns`` (other keys ignored, a missing one empty),
    atomically: the one writer of ``predictions.csv`` and ``volumes.csv``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt_cell(row.get(k)) for k in columns})
    return path


def write_csv(rows: Sequence[dict], path) -> Path:
    """Write the rows (:data:`CSV_COLUMNS`: one per image, one per frame of a sequence)
    atomically."""
    return write_columns_csv(rows, path, CSV_COLUMNS)


_INT_CSV = {"frame", "frames", "height", "width", *(f"{s}_area_px" for s in STRUCTURES)}
_STR_CSV = {
    "file",
    "status",
    "error",
    "label_map",
    "overlay",
    "probabilities",
    "area_plot",
    "spacing_source",
    "suspicious_reasons",
    "shape_convention",
}


def read_csv(path) -> list[dict]:
    """The rows of a ``predictions.csv`` written by :func:`write_csv`, values typed back.

    A column the file lacks (a CSV of an earlier version) is None.
    """
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for key, text in raw.items():
                if key in _STR_CSV:
                    row[key] = text
                elif text == "":
                    row[key] = None
                elif key == "suspicious_shape":
                    row[key] = text == "True"
                else:
                    try:
                        row[key] = int(text) if key in _INT_CSV else float(text)
                    except ValueError:
                        row[key] = text
            for key in CSV_COLUMNS:
                row.setdefault(key, None)
            rows.append(row)
    return rows


def _append_csv_rows(path: Path, rows: Sequence[dict]) -> None:
    """The rows of one more file in ``predictions.csv``, on disk before the next file."""
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt_cell(row.get(k)) for k in CSV_COLUMNS})
        fh.flush()
        os.fsync(fh.fileno())


def _row_spacing(row: dict) -> tuple[float, float] | None:
    if row.get("spacing_row_mm") is None or row.get("spacing_col_mm") is None:
        return None
    return float(row["spacing_row_mm"]), float(row["spacing_col_mm"])


def _still_valid(group: list[dict], png_spacing, need_probabilities: bool) -> bool:
    """Whether the rows of one file from an earlier run can stand for this run."""
    first = group[0]
    label_map, source = Path(first.get("label_map") or ""), Path(first["file"])
    frames = first.get("frames")
    if not (
        all(r.get("status") == "ok" and r.get("label_map") == first["label_map"] for r in group)
        and label_map.is_file()
        and source.is_file()
        and source.stat().st_mtime_ns <= label_map.stat().st_mtime_ns  # input unchanged
    ):
        return False
    seen = [r.get("frame") for r in group]
    if frames is None:
        complete = seen == [None]
    else:
        complete = None not in seen and sorted(seen) == list(range(frames))
    if not complete:
        return False  # a sequence whose rows are not all there
    origin = first.get("spacing_source")
    if origin is None:  # a CSV of an earlier version: only PNG spacing was assumed
        origin = "" if image_format(source) == "png" else "file"
    if origin != "file":  # the assumed spacing (or none) must be this run's
        stored = _row_spacing(first)
        if (stored is None) != (png_spacing is None) or (
            stored is not None and not np.allclose(stored, png_spacing, rtol=1e-5)
        ):
            return False
    if need_probabilities:
        probs = first.get("probabilities") or ""
        if not probs or not Path(probs).is_file():
            return False
    return True


def _reflag(group: list[dict], thresholds: OutlierThresholds | None) -> list[dict]:
    """The rows of an earlier run flagged under this run's thresholds: from their criteria
    when those were measured under the same convention, else measured again on the label
    map on disk."""
    group = sorted(group, key=lambda r: r.get("frame") or 0)
    if all(r.get("shape_convention") == _convention_key(thresholds) for r in group):
        return [_flag(r, thresholds) for r in group]
    labels = read_label_map(group[0]["label_map"])
    frames = labels[None] if group[0].get("frames") is None else labels
    spacing = _row_spacing(group[0])
    return [
        {**r, **shape_criteria(lm, spacing, thresholds)}
        for r, lm in zip(group, frames, strict=True)
    ]


def _done_rows(
    csv_path: Path,
    thresholds: OutlierThresholds | None = None,
    png_spacing=None,
    need_probabilities: bool = False,
) -> dict[str, list[dict]]:
    """The rows of an earlier run, per file, whose outputs are on disk: those files need no
    new prediction. Their flag and quality score are those of ``thresholds``."""
    if not csv_path.exists():
        return {}
    try:
        rows = read_csv(csv_path)
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        logger.warning("%s cannot be read (%s): every file is predicted again", csv_path, err)
        return {}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["file"], []).append(r)
    done = {}
    for file, group in groups.items():
        if not _still_valid(group, png_spacing, need_probabilities):
            continue
        try:
            done[file] = _reflag(group, thresholds)
        except (OSError, RuntimeError, ValueError) as err:  # the label map is unreadable
            logger.warning("%s: its label map cannot be measured again (%s)", file, err)
    return done

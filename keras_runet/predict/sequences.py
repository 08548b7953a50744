"""2D+t sequences in ``runet predict``: the LV cavity area per frame, the frames of largest
and smallest area, the area curve, and EDV / ESV / EF by Simpson's biplane method.

A sequence (a CAMUS ``patient0001_2CH_half_sequence.nii.gz`` or ``_sequence.mhd``, a
multi-frame DICOM cine loop) is segmented frame by frame (:func:`keras_runet.predict.predict_files`).
CAMUS annotates end diastole and end systole (its ``Info_*.cfg``); a new sequence carries no
such annotation, so here the frame of **largest LV cavity area is taken as ED ("ED-like")
and the frame of smallest area as ES ("ES-like")**, in each view separately (the first
such frame on a tie). On a half sequence (ED to ES) these are normally its two ends; on a
longer loop, the extremes over all its frames, whatever the cycle.

When both apical views of a case are given (two sequences whose file names differ only by
``2CH`` / ``4CH``, e.g. CAMUS's ``patient0001_2CH_half_sequence.nii.gz`` and
``patient0001_4CH_half_sequence.nii.gz``), the LV volumes at the ED-like and ES-like frames
of each view give EDV, ESV (ml, :func:`keras_runet.evaluation.simpson_biplane_volume`) and
EF (%, :func:`keras_runet.evaluation.ejection_fraction`): one row of
:data:`VOLUME_COLUMNS` per case.

>>> view_and_case("patient0001_2CH_half_sequence.nii.gz")
('2CH', 'patient0001_{view}_half_sequence.nii.gz', 'patient0001')
>>> extreme_frames([310.0, 420.5, 380.0, 250.0, 300.0])
(1, 3)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation import ejection_fraction, simpson_biplane_volume
from keras_runet.predict.rows import write_columns_csv
from tfds_camus.vocabulary import STRUCTURES, VIEW_2CH, VIEW_4CH, VIEWS

__all__ = [
    "VOLUME_COLUMNS",
    "case_volumes",
    "extreme_frames",
    "lv_areas",
    "pair_views",
    "plot_lv_area",
    "view_and_case",
    "write_volumes_csv",
]

# "2CH" / "4CH" as a word of a file name (delimited by anything but a letter or a digit).
VIEW_RE = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(VIEWS) + r")(?![A-Za-z0-9])", re.IGNORECASE)
VOLUME_COLUMNS = (
    "case",
    "file_2ch",
    "file_4ch",
    "ed_frame_2ch",
    "es_frame_2ch",
    "ed_frame_4ch",
    "es_frame_4ch",
    "edv_ml",
    "esv_ml",
    "ef_percent",
    "suspicious_frames",  # the chosen frames with a suspicious shape, e.g. "2CH ES-like"
    "error",
)


def view_and_case(name: str) -> tuple[str, str, str] | None:
    """The apical view a file name names, the name with the view replaced by ``{view}`` (the
    key that pairs the views of one case) and the case (the text before the view, else the
    name without it); None unless the name holds exactly one ``2CH`` / ``4CH`` word."""
    found = list(VIEW_RE.finditer(name))
    if len(found) != 1:
        return None
    m = found[0]
    key = name[: m.start()] + "{view}" + name[m.end() :]
    case = name[: m.start()].rstrip("_-. ") or key.replace("{view}", "").strip("_-. ")
    return m[1].upper(), key, case


def lv_areas(labels) -> np.ndarray:
    """LV cavity pixels of each frame of a ``(frames, rows, cols)`` label map (int64)."""
    lm = np.asarray(labels)
    if lm.ndim != 3:
        raise ValueError(f"labels must be (frames, rows, cols), got shape {lm.shape}")
    return np.isin(lm, STRUCTURES["LVendo"]).sum(axis=(1, 2)).astype(np.int64)


def extreme_frames(areas) -> tuple[int, int]:
    """``(largest, smallest)``: the frames of largest (ED-like) and smallest (ES-like) LV
    area; the first one on a tie."""
    a = np.asarray(areas, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"areas must be a non-empty 1-D array of finite numbers, got {areas!r}")
    return int(np.argmax(a)), int(np.argmin(a))


def pair_views(sequences: Sequence[Mapping]) -> list[tuple[str, Mapping, Mapping]]:
    """``(case, 2CH sequence, 4CH sequence)`` for each case with both views.

    Args:
        sequences: mappings with ``label_map`` (its path: the views of a case are in one
            folder and named alike, see :func:`view_and_case`).

    Returns:
        The pairs in the order of their 2CH sequence; a sequence without its other view,
        or whose name names no view, is left out.
    """
    by_key: dict[tuple[str, str], dict[str, Mapping]] = {}
    cases = {}
    for seq in sequences:
        path = Path(seq["label_map"])
        found = view_and_case(path.name)
        if found is None:
            continue
        view, key, case = found
        by_key.setdefault((str(path.parent), key), {})[view] = seq
        cases[(str(path.parent), key)] = case
    return [
        (cases[k], views[VIEW_2CH], views[VIEW_4CH])
        for k, views in by_key.items()
        if VIEW_2CH in views and VIEW_4CH in views
    ]


def case_volumes(case: str, seq_2ch: Mapping, seq_4ch: Mapping) -> dict:
    """EDV, ESV and EF of one case from its two segmented sequences.

    Args:
        case: the case's name.
        seq_2ch, seq_4ch: mappings with ``file`` (the input), ``labels`` (the
            ``(frames, rows, cols)`` label map), ``spacing`` (``(row_mm, col_mm)`` or None)
            and optionally ``suspicious`` (one bool per frame).

    Returns:
        A row of :data:`VOLUME_COLUMNS`: the ED-like and ES-like frames of each view
        (:func:`extreme_frames`, 0-based positions in the file), ``edv_ml`` and ``esv_ml``
        (Simpson's biplane, 20 disks), ``ef_percent``; NaN volumes with ``error`` set when a
        view has no pixel spacing, and NaN when a chosen frame has no LV.
    """
    row: dict = {"case": case, "file_2ch": str(seq_2ch["file"]), "file_4ch": str(seq_4ch["file"])}
    masks, spacings, flagged = {}, {}, []
    for view, seq in ((VIEW_2CH, seq_2ch), (VIEW_4CH, seq_4ch)):
        labels = np.asarray(seq["labels"])
        ed, es = extreme_frames(lv_areas(labels))
        tag = view.lower()
        row[f"ed_frame_{tag}"], row[f"es_frame_{tag}"] = ed, es
        lv = np.isin(labels, STRUCTURES["LVendo"])
        masks[view] = (lv[ed], lv[es])
        spacings[view] = seq.get("spacing")
        suspicious = seq.get("suspicious")
        if suspicious is not None:
            flagged += [
                f"{view} {n}" for n, f in (("ED-like", ed), ("ES-like", es)) if suspicious[f]
            ]
    row["suspicious_frames"] = ";".join(flagged)
    missing = [v for v, s in spacings.items() if s is None]
    if missing:
        row.update(
            edv_ml=math.nan,
            esv_ml=math.nan,
            ef_percent=math.nan,
            error=f"no pixel spacing for {' and '.join(missing)}: volumes need mm",
        )
        return row
    s2, s4 = spacings[VIEW_2CH], spacings[VIEW_4CH]
    edv = simpson_biplane_volume(masks[VIEW_2CH][0], masks[VIEW_4CH][0], s2, s4)
    esv = simpson_biplane_volume(masks[VIEW_2CH][1], masks[VIEW_4CH][1], s2, s4)
    row.update(edv_ml=edv, esv_ml=esv, ef_percent=ejection_fraction(edv, esv), error="")
    return row


def write_volumes_csv(rows: Sequence[Mapping], path) -> Path:
    """Write rows of :data:`VOLUME_COLUMNS` atomically."""
    return write_columns_csv(rows, path, VOLUME_COLUMNS)


def plot_lv_area(areas, path, *, spacing=None, suspicious=None, title: str = "") -> Path:
    """The LV cavity area against the frame, the ED-like (largest) and ES-like (smallest)
    frames marked, and the frames with a suspicious shape crossed.

    Args:
        areas: LV cavity pixels per frame (:func:`lv_areas`).
        path: the PNG to write (atomically).
        spacing: ``(row_mm, col_mm)``: areas in mm^2; None: in pixels.
        suspicious: one bool per frame, or None.
        title: the figure's title (e.g. the file name).

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from keras_runet.evaluation.figures import _save

    px = np.asarray(areas, dtype=np.float64)
    values = px * (spacing[0] * spacing[1]) if spacing is not None else px
    unit = "mm$^2$" if spacing is not None else "pixels"
    frames = np.arange(len(values))
    largest, smallest = extreme_frames(px)
    fig = Figure(figsize=(6.0, 3.4), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(frames, values, "-o", color="tab:blue", markersize=3, label="LV cavity")
    ax.plot(largest, values[largest], "^", color="tab:red", markersize=10,
            label=f"largest, ED-like (frame {largest})")  # fmt: skip
    ax.plot(smallest, values[smallest], "v", color="tab:green", markersize=10,
            label=f"smallest, ES-like (frame {smallest})")  # fmt: skip
    if suspicious is not None and any(suspicious):
        bad = np.flatnonzero(np.asarray(suspicious, dtype=bool))
        ax.plot(bad, values[bad], "x", color="0.3", markersize=8, label="suspicious shape")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("frame (position in the file)")
    ax.set_ylabel(f"LV cavity area ({unit})")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)

"""Figures of an evaluation (matplotlib, Agg canvas; no pyplot global state).

- :func:`plot_hd_distribution`: the HD of LVendo and LVepi per (model, output), as box
  plots with every image as a dot (ED and ES in two colours), and the geometric outlier
  thresholds (ED, ES) as horizontal lines.
- :func:`plot_failure_detector`: the ROC curve of the quality score for geometric outliers
  (the anatomical flag's point marked) and the score against the HD, per (model, output).
- :func:`plot_worst_cases`: overlays of the worst images: the image (if given) with the
  reference (green) and predicted (red) contours of LVendo, LVepi and LA, drawn in mm.
- :func:`worst_indices` / :func:`worst_rows`: the rows with the largest HD, to pick the
  cases; :func:`case_title` a panel title for a row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_runet.evaluation._validation import LV_STRUCTURES, STRUCTURES, as_label_map
from keras_runet.evaluation.detector import auroc, detection_counts, detector_table, roc_curve
from keras_runet.evaluation.outliers import OutlierThresholds
from tfds_camus.atomic import atomic_path

__all__ = [
    "case_title",
    "plot_failure_detector",
    "plot_hd_distribution",
    "plot_worst_cases",
    "worst_indices",
    "worst_rows",
]

_INSTANT_COLOURS = {"ED": "tab:blue", "ES": "tab:orange"}


def _save(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` atomically (the format comes from ``path``'s suffix)."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=fig.dpi)
    return path


def plot_hd_distribution(
    rows: Sequence[Mapping],
    path,
    thresholds: OutlierThresholds | None = None,
    structures: Sequence[str] = LV_STRUCTURES,
) -> Path:
    """Box plots of the HD per (model, output), with the outlier thresholds.

    Args:
        rows: per-image rows.
        path: the PNG to write.
        thresholds: :class:`OutlierThresholds` (default: Table I) for the lines.
        structures: the structures, one panel each.

    Returns:
        The path written.
    """
    t = thresholds or OutlierThresholds()
    groups: dict[str, list[Mapping]] = {}
    for r in rows:
        label = f"{r.get('model') or '?'}\n{r.get('output') or ''}".strip()
        groups.setdefault(label, []).append(r)
    names = list(groups)
    fig = Figure(figsize=(max(5.0, 1.6 * len(names) * len(structures)), 4.2), dpi=110)
    rng = np.random.default_rng(0)
    for k, s in enumerate(structures):
        ax = fig.add_subplot(1, len(structures), k + 1)
        data = []
        for name in names:
            vals = np.array([r.get(f"{s}_hd_mm") for r in groups[name]], dtype=np.float64)
            data.append(vals[np.isfinite(vals)])
        ax.boxplot(data, showfliers=False, widths=0.5, medianprops={"color": "black"})
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
        for i, name in enumerate(names):
            for r in groups[name]:
                v = r.get(f"{s}_hd_mm")
                if v is None or not math.isfinite(v):
                    continue
                ax.plot(
                    i + 1 + rng.uniform(-0.18, 0.18),
                    v,
                    ".",
                    ms=3,
                    alpha=0.5,
                    color=_INSTANT_COLOURS.get(r.get("instant"), "grey"),
                )
        for instant, colour in _INSTANT_COLOURS.items():
            ax.axhline(
                t.hd_limit(instant),
                color=colour,
                ls="--",
                lw=1,
                label=f"{instant} outlier limit {t.hd_limit(instant)} mm",
            )
        ax.set_title(f"{s} Hausdorff distance")
        ax.set_ylabel("HD (mm)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def plot_failure_detector(
    rows: Sequence[Mapping], path, thresholds: OutlierThresholds | None = None
) -> Path:
    """The quality score as a detector of geometric outliers, per (model, output).

    Left: the ROC curve of the score (:func:`keras_runet.evaluation.detector.roc_curve`),
    with the anatomical flag's operating point (score < 0) marked. Right: the score against
    the larger LVendo / LVepi HD of each image, with the HD limits (ED, ES) and the flag's
    limit (score 0), the score axis linear in [-1, 1] and logarithmic beyond; an image with
    a missing structure (score -inf, HD NaN) is drawn as a cross at the axes' edges.

    Args:
        rows: per-image rows with references.
        path: the PNG to write.
        thresholds: :class:`OutlierThresholds` (default: Table I).

    Returns:
        The path written.
    """
    t = thresholds or OutlierThresholds()
    table = detector_table(rows, t)
    fig = Figure(figsize=(10.0, 4.4), dpi=110)
    roc_ax, sc_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    finite = [s for g in table.values() for s in g["scores"] if math.isfinite(s)]
    floor = min(min(finite, default=0.0), -1.0) * 1.5  # where a score of -inf is drawn
    hds = [h for g in table.values() for h in g["hd_mm"] if math.isfinite(h)]
    top = max(max(hds, default=0.0), t.hd_mm_ed, t.hd_mm_es) * 1.1  # where a NaN HD is drawn
    for k, ((model, output), g) in enumerate(table.items()):
        colour = f"C{k % 10}"
        label = f"{model or '?'} {output}".strip()
        area = auroc(g["scores"], g["failures"])
        curve = roc_curve(g["scores"], g["failures"])
        roc_ax.plot(  # straight segments: a tie of scores is a diagonal
            curve["fpr"],
            curve["tpr"],
            color=colour,
            label=f"{label} (AUROC {'n/a' if math.isnan(area) else f'{area:.3f}'})",
        )
        c = detection_counts(g["flags"], g["failures"])
        if c["n_failures"] and c["n"] - c["n_failures"]:
            roc_ax.plot(
                c["fp"] / (c["n"] - c["n_failures"]),
                c["tp"] / c["n_failures"],
                "o",
                color=colour,
                mfc="none",
            )
        scores = np.asarray(g["scores"], dtype=np.float64)
        hd = np.asarray(g["hd_mm"], dtype=np.float64)
        missing = ~np.isfinite(scores) | ~np.isfinite(hd)
        sc_ax.plot(scores[~missing], hd[~missing], ".", ms=4, alpha=0.6, color=colour, label=label)
        if missing.any():
            y = np.where(np.isfinite(hd[missing]), hd[missing], top)
            x = np.where(np.isfinite(scores[missing]), scores[missing], floor)
            sc_ax.plot(x, y, "x", ms=5, color=colour)
    roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate (geometric outliers found)")
    roc_ax.set_title("Quality score vs geometric outliers (o: anatomical flag)", fontsize=9)
    roc_ax.set_xlim(-0.02, 1.02)
    roc_ax.set_ylim(-0.02, 1.02)
    roc_ax.legend(fontsize=7, loc="lower right")
    for instant, colour in _INSTANT_COLOURS.items():
        sc_ax.axhline(t.hd_limit(instant), color=colour, ls="--", lw=1, label=f"{instant} HD limit")
    sc_ax.axvline(0.0, color="black", ls=":", lw=1, label="flag limit (score 0)")
    sc_ax.set_xscale("symlog", linthresh=1.0)  # linear in [-1, 1], where the limit is
    sc_ax.set_xlabel("quality score, symlog (x: missing structure, drawn at the edges)")
    sc_ax.set_ylabel(f"max HD of {' / '.join(t.structures)} (mm)")
    sc_ax.set_title("Score against the Hausdorff distance", fontsize=9)
    sc_ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def worst_indices(rows: Sequence[Mapping], k: int = 6, structures=LV_STRUCTURES) -> list[int]:
    """Indices of the ``k`` rows with the largest HD over ``structures`` (NaN, a missing
    structure, counts as the worst)."""

    def key(i):
        vals = [rows[i].get(f"{s}_hd_mm") for s in structures]
        if any(v is None or not math.isfinite(v) for v in vals):
            return math.inf
        return max(vals)

    return sorted(range(len(rows)), key=key, reverse=True)[: max(0, int(k))]


def worst_rows(rows: Sequence[Mapping], k: int = 6, structures=LV_STRUCTURES) -> list[Mapping]:
    """The ``k`` rows with the largest HD (see :func:`worst_indices`)."""
    return [rows[i] for i in worst_indices(rows, k, structures)]


def case_title(row: Mapping) -> str:
    """A short panel title for a row: who, which image, its HDs and outlier flags."""
    hd = " / ".join(
        "n/a"
        if row.get(f"{s}_hd_mm") is None or not math.isfinite(row[f"{s}_hd_mm"])
        else f"{row[f'{s}_hd_mm']:.1f}"
        for s in LV_STRUCTURES
    )
    flags = ", ".join(
        name
        for name, key in (("geo", "geometric_outlier"), ("ana", "anatomical_outlier"))
        if row.get(key)
    )
    who = " ".join(str(row.get(k) or "") for k in ("model", "output")).strip()
    img = "_".join(str(row.get(k) or "") for k in ("patient_id", "view", "instant"))
    return f"{who}\n{img}\nHD endo/epi {hd} mm" + (f" ({flags})" if flags else "")


def plot_worst_cases(cases: Sequence[Mapping], path, n_cols: int = 3) -> Path:
    """Overlays of cases: reference contours in green, predicted in red.

    Args:
        cases: mappings with ``pred`` and ``ref`` (2D label maps, same shape), optional
            ``image`` (2D, same shape), ``spacing`` ``(row_mm, col_mm)`` (default 1, 1) and
            ``title``.
        path: the PNG to write.
        n_cols: panels per line.

    Returns:
        The path written.
    """
    if not cases:
        raise ValueError("cases is empty: nothing to draw")
    n = len(cases)
    n_cols = max(1, min(int(n_cols), n))
    n_rows = math.ceil(n / n_cols)
    fig = Figure(figsize=(3.6 * n_cols, 4.2 * n_rows), dpi=110)
    for i, case in enumerate(cases):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        pred = as_label_map(case["pred"], "pred")
        ref = as_label_map(case["ref"], "ref")
        if pred.shape != ref.shape:
            raise ValueError(
                f"pred and ref must have the same shape, got {pred.shape} and {ref.shape}"
            )
        sr, sc = case.get("spacing") or (1.0, 1.0)
        h, w = ref.shape
        extent = (0.0, w * sc, h * sr, 0.0)
        image = case.get("image")
        if image is not None:
            ax.imshow(np.asarray(image), cmap="gray", extent=extent, interpolation="nearest")
        else:
            ax.imshow(np.zeros_like(ref), cmap="gray", extent=extent, vmin=0, vmax=1)
        x = (np.arange(w) + 0.5) * sc
        y = (np.arange(h) + 0.5) * sr
        for labels in STRUCTURES.values():
            for lm, colour in ((ref, "lime"), (pred, "red")):
                m = np.isin(lm, labels).astype(np.float32)
                if m.any():
                    ax.contour(x, y, m, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(case.get("title", ""), fontsize=8)
        ax.set_xlabel("mm")
        ax.set_aspect("equal")
    fig.suptitle("Worst cases: reference (green), prediction (red)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

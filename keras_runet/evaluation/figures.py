"""Figures of an evaluation (matplotlib, Agg canvas; no pyplot global state).

- :func:`plot_hd_distribution`: the HD of LVendo and LVepi per (model, output), as box
  plots with every image as a dot (ED and ES in two colours), and the geometric outlier
  thresholds (ED, ES) as horizontal lines.
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
from keras_runet.evaluation.outliers import OutlierThresholds
from tfds_camus.atomic import atomic_path

__all__ = [
    "case_title",
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

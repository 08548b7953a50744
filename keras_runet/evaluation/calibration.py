"""Recomputing the anatomical limits of the RU-Net paper's Table I from reference masks.

The paper set its shape limits as "the lowest value observed on the 200 images that were
annotated by the three experts": the minimum of simplicity (Sp) and convexity (Cx) over
reference tracings. Those numbers only hold under the measurement convention they were
measured with, which the paper does not state (grid, hull: docs/thresholds.md). This module
makes the table again, on any labelled masks and under any
:class:`~keras_runet.evaluation.shapes.ShapeConvention`:

- :func:`reference_shape_rows`: Sp and Cx of LVendo and LVepi of every reference mask;
- :func:`threshold_table`: per structure and instant (ED, ES and both), the minimum, the
  0.5 / 1 / 5 % quantiles and the mean of Sp and Cx;
- :func:`calibrated_thresholds`: the thresholds dict (:meth:`OutlierThresholds.from_dict`
  reads it; ``runet cv / evaluate / predict --thresholds`` read its JSON) with the shape
  limits set to the minimum, or to a chosen quantile, over both instants (the criteria have
  one shape limit per structure), the convention recorded, the distance limits kept;
- :func:`reference_outlier_warning`: the line a report prints when more than 1 % of the
  reference masks are anatomical outliers under the thresholds in use.

The MAD / HD limits of Table I come from the inter-observer variability between several
experts' tracings of the same images; CAMUS gives one tracing per image, so they are not
recomputed here (they stay those of ``base``).

>>> import numpy as np
>>> ref = np.zeros((60, 40), np.uint8); ref[10:50, 8:32] = 2; ref[15:45, 12:28] = 1
>>> rows = reference_shape_rows([{"ref": ref, "spacing": (0.3, 0.3), "instant": "ED"}])
>>> rows[0]["LVendo_convexity"], round(rows[0]["LVendo_simplicity"], 3)
(1.0, 0.883)
>>> t = calibrated_thresholds(rows)
>>> t["convexity_lvendo"], t["convention"]["simplicity_grid"]
(1.0, 'isotropic')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from keras_runet.evaluation._validation import INSTANTS, LV_STRUCTURES, STRUCTURES
from keras_runet.evaluation.outliers import OutlierThresholds, anatomical_outlier
from keras_runet.evaluation.shapes import shape_convention, shape_metrics

__all__ = [
    "METRICS",
    "QUANTILES",
    "calibrated_thresholds",
    "camus_reference_items",
    "format_threshold_table",
    "reference_outlier_rate",
    "reference_outlier_warning",
    "reference_shape_rows",
    "threshold_table",
]

METRICS = ("simplicity", "convexity")
QUANTILES = (0.005, 0.01, 0.05)  # 0.5 %, 1 %, 5 %
ALL_INSTANTS = "all"
# The OutlierThresholds field of each (structure, metric).
_FIELDS = {(s, m): f"{m}_{s.lower()}" for s in LV_STRUCTURES for m in METRICS}
_IMAGE_KEYS = ("patient_id", "view", "instant")


def _structure_mask(label_map: np.ndarray, structure: str) -> np.ndarray:
    return np.isin(label_map, STRUCTURES[structure])


def reference_shape_rows(items: Iterable[Mapping], convention=None) -> list[dict]:
    """Sp and Cx of the LV structures of every reference label map.

    Args:
        items: mappings with ``ref`` (2D label map, 0..3), ``spacing`` ``(row_mm, col_mm)``,
            ``instant`` ("ED" / "ES"), and optionally ``patient_id`` and ``view``.
        convention: the measurement convention (a name, dict or ShapeConvention; None: the
            default).

    Returns:
        One row per item: ``patient_id, view, instant`` and ``{S}_simplicity``,
        ``{S}_convexity`` for S in LVendo, LVepi (NaN for an empty structure).

    Raises:
        ValueError: an item without ``ref`` / ``spacing`` / ``instant``, a bad instant or
            convention.
    """
    conv = shape_convention(convention)
    rows = []
    for i, item in enumerate(items):
        missing = [k for k in ("ref", "spacing", "instant") if k not in item]
        if missing:
            raise ValueError(f"reference item {i} is missing {missing} (has {sorted(item)})")
        if item["instant"] not in INSTANTS:
            raise ValueError(
                f"reference item {i}: instant must be one of {INSTANTS}, got {item['instant']!r}"
            )
        ref = np.asarray(item["ref"])
        if ref.ndim != 2:
            raise ValueError(f"reference item {i}: ref must be a 2D label map, got {ref.shape}")
        row = {k: item.get(k) for k in _IMAGE_KEYS}
        for s in LV_STRUCTURES:
            cx, sp = shape_metrics(_structure_mask(ref, s), item["spacing"], conv)
            row[f"{s}_simplicity"] = sp
            row[f"{s}_convexity"] = cx
        rows.append(row)
    return rows


def _values(rows: Sequence[Mapping], key: str, instant: str) -> np.ndarray:
    vals = [float(r[key]) for r in rows if instant == ALL_INSTANTS or r.get("instant") == instant]
    return np.asarray(vals, dtype=np.float64)


def threshold_table(rows: Sequence[Mapping], quantiles: Sequence[float] = QUANTILES) -> list[dict]:
    """Table I again: per structure, instant and metric, the minimum and quantiles.

    Args:
        rows: :func:`reference_shape_rows`' rows (or any rows with ``instant`` and the
            ``{S}_simplicity`` / ``{S}_convexity`` keys).
        quantiles: fractions in [0, 1) (numpy's default, linear, quantiles).

    Returns:
        Rows ``{"structure", "instant" ("ED", "ES" or "all"), "metric", "n", "n_nan",
        "min", "q0.5%"... , "mean"}``; NaN values (empty structures) are counted in
        ``n_nan`` and left out of the statistics.
    """
    qs = _check_quantiles(quantiles)
    table = []
    for s in LV_STRUCTURES:
        for instant in (*INSTANTS, ALL_INSTANTS):
            for m in METRICS:
                v = _values(rows, f"{s}_{m}", instant)
                ok = v[np.isfinite(v)]
                entry = {
                    "structure": s,
                    "instant": instant,
                    "metric": m,
                    "n": int(ok.size),
                    "n_nan": int(v.size - ok.size),
                    "min": float(ok.min()) if ok.size else math.nan,
                }
                for q in qs:
                    entry[_quantile_key(q)] = float(np.quantile(ok, q)) if ok.size else math.nan
                entry["mean"] = float(ok.mean()) if ok.size else math.nan
                table.append(entry)
    return table


def _quantile_key(q: float) -> str:
    return f"q{100 * q:g}%"


def _check_quantiles(quantiles) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    bad = [q for q in qs if not 0.0 <= q < 1.0]
    if bad:
        raise ValueError(f"quantiles must be fractions in [0, 1), got {bad}")
    return qs


def calibrated_thresholds(
    rows: Sequence[Mapping],
    quantile: float = 0.0,
    convention=None,
    base: OutlierThresholds | Mapping | None = None,
) -> dict:
    """The thresholds dict with the shape limits taken from reference masks.

    Args:
        rows: :func:`reference_shape_rows`' rows, measured under ``convention``.
        quantile: 0 (default): the minimum over the references, the paper's rule; else the
            fraction (e.g. 0.01), which lets that fraction of the references fall below.
        convention: the convention the rows were measured with, recorded in the result.
        base: thresholds whose other fields (MAD / HD limits, structures) are kept
            (default: Table I).

    Returns:
        A JSON-ready dict that :meth:`OutlierThresholds.from_dict` accepts.

    Raises:
        ValueError: a quantile outside [0, 1), or a structure with no measurable
            reference (no limit can be set from nothing).
    """
    (q,) = _check_quantiles([quantile])
    if isinstance(base, Mapping):
        base = OutlierThresholds.from_dict(base)
    values = (base or OutlierThresholds()).to_dict()
    for (s, m), field in _FIELDS.items():
        v = _values(rows, f"{s}_{m}", ALL_INSTANTS)
        v = v[np.isfinite(v)]
        if not v.size:
            raise ValueError(f"no reference mask with a measurable {s} {m}: no limit to set")
        values[field] = float(v.min()) if q == 0 else float(np.quantile(v, q))
    values["convention"] = shape_convention(convention).to_dict()
    OutlierThresholds.from_dict(values)  # checks it
    return values


def format_threshold_table(
    table: Sequence[Mapping], thresholds: Mapping | OutlierThresholds | None = None
) -> str:
    """The table as Markdown (3 decimals), with the limits of ``thresholds`` (if given)."""
    if isinstance(thresholds, OutlierThresholds):
        thresholds = thresholds.to_dict()
    stats = [k for k in table[0] if k.startswith("q")] if table else []
    head = ["structure", "instant", "metric", "n", "min", *stats, "mean"]
    if thresholds is not None:
        head.append("limit")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = [e["structure"], e["instant"], e["metric"], str(e["n"])]
        if e["n_nan"]:
            cells[-1] += f" (+{e['n_nan']} empty)"
        cells += [f"{e[k]:.3f}" for k in ("min", *stats, "mean")]
        if thresholds is not None:
            cells.append(f"{thresholds[_FIELDS[e['structure'], e['metric']]]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ reference masks


def camus_reference_items(camus, patients: Iterable[str] | None = None) -> Iterator[dict]:
    """The reference masks of a CAMUS folder (either release, or the synthetic CAMUS).

    Args:
        camus: a CAMUS folder or a :class:`tfds_camus.layout.Layout`.
        patients: patient keys to read (default: every patient); patients without
            reference masks (the original release's testing set) are skipped.

    Yields:
        ``{"patient_id", "view", "instant", "ref", "spacing"}`` per annotated image.
    """
    from tfds_camus import reader
    from tfds_camus.vocabulary import VIEWS

    layout = reader.detect_layout(camus)
    keys = [p.key for p in layout.patients] if patients is None else list(patients)
    for key in keys:
        patient = layout.patient(key)
        for view in VIEWS:
            for instant in INSTANTS:
                data = reader.load_instant(layout, patient, view, instant, check_sequence=False)
                if data.get("gt") is None:
                    continue
                yield {
                    "patient_id": patient.patient_id,
                    "view": view,
                    "instant": instant,
                    "ref": data["gt"],
                    "spacing": tuple(data["spacing"]),
                }


# ------------------------------------------------------------------ report warning


def _truthy(value) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "nan"):
            return None
        return text in ("true", "1", "yes")
    return bool(value)


def reference_outlier_rate(
    rows: Iterable[Mapping], thresholds: OutlierThresholds | None = None
) -> tuple[int, int]:
    """``(outliers, images)``: reference masks that are anatomical outliers.

    Each image counts once (rows of several models or outputs share their reference; an
    image is ``patient_id, view, instant`` when the rows have them). The reference's
    ``{S}_ref_simplicity`` / ``{S}_ref_convexity`` are compared with ``thresholds`` when
    the rows have them; otherwise the row's ``ref_anatomical_outlier`` is used. Rows with
    neither (reference shapes not measured) are left out.
    """
    t = thresholds or OutlierThresholds()
    keys = [f"{s}_ref_{m}" for s in t.structures for m in METRICS]
    seen: dict = {}
    for i, row in enumerate(rows):
        key = tuple(row.get(k) for k in _IMAGE_KEYS)
        if any(v is None for v in key):
            key = ("row", i)
        if key in seen:
            continue
        flag = None
        if all(k in row for k in keys):
            values = [row[k] for k in keys]
            try:
                measured = any(v is not None and math.isfinite(float(v)) for v in values)
            except (TypeError, ValueError):
                measured = False
            if measured:
                flag = anatomical_outlier({k: float(row[k]) for k in keys}, t, prefix="ref_")[0]
        if flag is None:
            flag = _truthy(row.get("ref_anatomical_outlier"))
        if flag is not None:
            seen[key] = flag
    return sum(seen.values()), len(seen)


def reference_outlier_warning(
    rows: Iterable[Mapping], thresholds: OutlierThresholds | None = None, limit: float = 0.01
) -> str | None:
    """A warning line when more than ``limit`` of the reference masks are anatomical
    outliers under ``thresholds`` (the paper's limits were set so that experts' tracings
    pass them); None otherwise, or when no reference was measured.

    >>> rows = [{"ref_anatomical_outlier": i < 3} for i in range(100)]
    >>> print(reference_outlier_warning(rows))  # doctest: +ELLIPSIS
    warning: 3 of 100 reference masks (3.0 %) are anatomical outliers ...
    >>> reference_outlier_warning(rows[2:]) is None  # 1 of 98: above 1 %
    False
    >>> reference_outlier_warning(rows[2:] + rows[50:52]) is None  # 1 of 100: not above
    True
    """
    t = thresholds or OutlierThresholds()
    n_out, n = reference_outlier_rate(rows, t)
    if not n or n_out <= limit * n:
        return None
    name = t.convention.name or "custom"
    return (
        f"warning: {n_out} of {n} reference masks ({100 * n_out / n:.1f} %) are anatomical "
        f"outliers under the thresholds in use (Sp / Cx limits LVendo {t.simplicity_lvendo:.3f}"
        f" / {t.convexity_lvendo:.3f}, LVepi {t.simplicity_lvepi:.3f} / {t.convexity_lvepi:.3f},"
        f" convention {name}); the limits are meant to pass expert tracings, so the anatomical "
        "outlier counts overstate failures: calibrate them on the references with "
        "`runet thresholds` (docs/thresholds.md)"
    )

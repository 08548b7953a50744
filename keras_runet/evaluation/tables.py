"""The paper's tables from per-image rows: the summary (Tables II / III) and the EF table (IV).

- :func:`summarize` groups rows by ``(model, output)`` (one line per model, and per output
  of RU-Net like the paper's Table III o1 / o2) and computes, for the subsets ``all``,
  ``ED``, ``ES``, ``Good+Medium`` and ``Poor``: mean and sd of Dice, MAD and HD (and the
  pooled MAD, convexity, simplicity) per structure, and the number and percentage of
  geometric and anatomical outliers (recomputed from the metrics with the thresholds
  given, so a CSV can be re-read with other thresholds). Means and sds skip NaN (an empty
  structure), whose count is reported as ``n_nan``; sd is the population sd (ddof=0).
- :func:`patient_volumes` pairs the 2CH and 4CH rows of each patient into Simpson's
  biplane EDV, ESV and EF; :func:`ejection_fraction_table` compares them with references
  (the ``Info_*.cfg`` values, or, without references, the volumes of the reference masks):
  Pearson correlation, bias +- sd of (prediction - reference), mean absolute error (CAMUS
  paper, Table IV).

Summary format (JSON-ready; NaN becomes null in the file)::

    {"n_images": int, "thresholds": {...}, "postprocessed": bool, "ef_reference": str,
     "groups": [{"model": str, "output": str, "n_images": int,
                 "subsets": {"all" | "ED" | "ES" | "Good+Medium" | "Poor": {
                     "n": int,
                     "structures": {"LVendo" | "LVepi" | "LA": {
                         "dice" | "mad_mm" | "hd_mm" | "mad_pooled_mm" | "convexity"
                         | "simplicity": {"mean", "sd", "n", "n_nan"}}},
                     "geometric_outliers" | "anatomical_outliers" | "both_outliers"
                     | "reference_anatomical_outliers": {"count", "percent"}}},
                 "ejection_fraction": {...} or None}]}

Markdown: :mod:`keras_runet.evaluation.markdown`; files: :mod:`keras_runet.evaluation.reports`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from keras_runet.evaluation._validation import LVENDO, STRUCTURES
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)
from keras_runet.evaluation.volumes import biplane_volume_from_disks, ejection_fraction

__all__ = [
    "METRICS",
    "SUBSETS",
    "ejection_fraction_table",
    "patient_volumes",
    "summarize",
]

SUBSETS = ("all", "ED", "ES", "Good+Medium", "Poor")
METRICS = ("dice", "mad_mm", "hd_mm", "mad_pooled_mm", "convexity", "simplicity")


def _finite_stats(values) -> dict:
    arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    ok = np.isfinite(arr)
    n = int(ok.sum())
    return {
        "mean": float(arr[ok].mean()) if n else float("nan"),
        "sd": float(arr[ok].std()) if n else float("nan"),
        "n": n,
        "n_nan": int(arr.size - n),
    }


def _count(flags: Sequence[bool], n: int) -> dict:
    count = int(sum(bool(f) for f in flags))
    return {"count": count, "percent": 100.0 * count / n if n else float("nan")}


def _in_subset(row: Mapping, subset: str) -> bool:
    if subset == "all":
        return True
    if subset in ("ED", "ES"):
        return row.get("instant") == subset
    quality = row.get("image_quality")
    if subset == "Good+Medium":
        return quality in ("Good", "Medium")
    return quality == subset


def _subset_block(rows: list[Mapping], thresholds: OutlierThresholds) -> dict:
    n = len(rows)
    structures = {
        s: {m: _finite_stats(r.get(f"{s}_{m}") for r in rows) for m in METRICS} for s in STRUCTURES
    }
    geo = [geometric_outlier(r, r["instant"], thresholds)[0] for r in rows]
    ana = [anatomical_outlier(r, thresholds)[0] for r in rows]
    ref_ana = [anatomical_outlier(r, thresholds, prefix="ref_")[0] for r in rows]
    return {
        "n": n,
        "structures": structures,
        "geometric_outliers": _count(geo, n),
        "anatomical_outliers": _count(ana, n),
        "both_outliers": _count([g and a for g, a in zip(geo, ana, strict=True)], n),
        "reference_anatomical_outliers": _count(ref_ana, n),
    }


def _groups(rows: Iterable[Mapping]) -> dict[tuple[str, str], list[Mapping]]:
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for r in rows:
        groups.setdefault((str(r.get("model") or ""), str(r.get("output") or "")), []).append(r)
    return groups


def summarize(
    rows: Sequence[Mapping],
    thresholds: OutlierThresholds | None = None,
    references: Mapping | None = None,
) -> dict:
    """Aggregate per-image rows into the summary (see the module docstring).

    Args:
        rows: rows of :func:`keras_runet.evaluation.evaluate_label_maps` (or read back with
            :func:`read_per_image_csv`).
        thresholds: :class:`OutlierThresholds` for the outlier counts (default: Table I).
        references: per-patient reference volumes for the EF table (see
            :func:`ejection_fraction_table`); None compares with the reference masks.

    Returns:
        The summary dict.
    """
    thresholds = thresholds or OutlierThresholds()
    rows = list(rows)
    missing = [k for k in ("instant", f"{LVENDO}_hd_mm") if rows and k not in rows[0]]
    if missing:
        raise ValueError(f"rows lack the columns {missing}; pass rows from evaluate_label_maps")
    ef = {}
    if rows and "lv_diameters_mm" in rows[0]:
        ef = {
            (g["model"], g["output"]): g
            for g in ejection_fraction_table(rows, references)["groups"]
        }
    groups = []
    for (model, output), grows in _groups(rows).items():
        subsets = {}
        for subset in SUBSETS:
            sub = [r for r in grows if _in_subset(r, subset)]
            if sub or subset == "all":
                subsets[subset] = _subset_block(sub, thresholds)
        groups.append(
            {
                "model": model,
                "output": output,
                "n_images": len(grows),
                "subsets": subsets,
                "ejection_fraction": ef.get((model, output)),
            }
        )
    return {
        "n_images": len(rows),
        "thresholds": thresholds.to_dict(),
        "postprocessed": bool(rows) and all(bool(r.get("postprocessed")) for r in rows),
        "ef_reference": "given (Info_*.cfg)" if references is not None else "reference masks",
        "groups": groups,
    }


# --------------------------------------------------------------------------- volumes, EF


def patient_volumes(rows: Iterable[Mapping], source: str = "pred") -> list[dict]:
    """Simpson's biplane EDV, ESV (ml) and EF (%) per (model, output, patient).

    Args:
        rows: per-image rows holding ``lv_length_mm`` / ``lv_diameters_mm`` (prediction)
            and ``ref_lv_length_mm`` / ``ref_lv_diameters_mm`` (reference mask).
        source: "pred" or "ref": which masks' disks to use.

    Returns:
        A list of ``{"model", "output", "patient_id", "EDV", "ESV", "EF"}``; patients
        without the four rows (2CH/4CH x ED/ES) get NaN where a volume is missing.
    """
    if source not in ("pred", "ref"):
        raise ValueError(f"source must be 'pred' or 'ref', got {source!r}")
    prefix = "" if source == "pred" else "ref_"
    disks: dict[tuple, dict] = {}
    for r in rows:
        key = (str(r.get("model") or ""), str(r.get("output") or ""), r.get("patient_id"))
        disks.setdefault(key, {})[(r.get("view"), r.get("instant"))] = (
            r.get(f"{prefix}lv_length_mm"),
            r.get(f"{prefix}lv_diameters_mm"),
        )
    out = []
    for (model, output, patient), views in disks.items():
        vol = {}
        for instant in ("ED", "ES"):
            a, b = views.get(("2CH", instant)), views.get(("4CH", instant))
            if a is None or b is None or a[1] is None or b[1] is None:
                vol[instant] = float("nan")
            else:
                vol[instant] = biplane_volume_from_disks(a[0], a[1], b[0], b[1])
        out.append(
            {
                "model": model,
                "output": output,
                "patient_id": patient,
                "EDV": vol["ED"],
                "ESV": vol["ES"],
                "EF": ejection_fraction(vol["ED"], vol["ES"]),
            }
        )
    return out


_REFERENCE_KEYS = {"EDV": ("EDV", "LVedv"), "ESV": ("ESV", "LVesv"), "EF": ("EF", "LVef")}


def _reference_value(ref: Mapping, index: str) -> float:
    # The first key that holds a finite number (the 2023 cfg has EF, the original LVef;
    # a reader may report the other as NaN).
    for key in _REFERENCE_KEYS[index]:
        try:
            value = float(ref.get(key))
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return float("nan")


def _agreement(pred: Sequence[float], ref: Sequence[float]) -> dict:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(ref, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(g)
    p, g = p[ok], g[ok]
    n = int(ok.sum())
    nan = float("nan")
    if n == 0:
        return {"n": 0, "corr": nan, "bias": nan, "sd": nan, "mae": nan}
    diff = p - g
    corr = nan
    if n >= 2 and p.std() > 0 and g.std() > 0:
        corr = float(np.corrcoef(p, g)[0, 1])
    return {
        "n": n,
        "corr": corr,
        "bias": float(diff.mean()),
        "sd": float(diff.std()),
        "mae": float(np.abs(diff).mean()),
    }


def ejection_fraction_table(
    rows_or_volumes: Sequence[Mapping], references: Mapping | None = None
) -> dict:
    """EDV, ESV and EF against references: correlation, bias +- sd, MAE (CAMUS Table IV).

    Args:
        rows_or_volumes: per-image rows (with the LV disks) or the output of
            :func:`patient_volumes` (dicts with ``EDV``, ``ESV``, ``EF``).
        references: ``{patient_id: {"EDV"|"LVedv": ml, "ESV"|"LVesv": ml, "EF"|"LVef": %}}``
            (e.g. the ``Info_*.cfg`` values). None: compare with the volumes of the
            reference masks (rows only).

    Returns:
        ``{"reference": "given" | "reference masks", "groups": [{"model", "output",
        "n_patients", "EDV" | "ESV" | "EF": {"n", "corr", "bias", "sd", "mae"},
        "patients": [{"patient_id", "EDV", "ESV", "EF", "ref_EDV", "ref_ESV",
        "ref_EF"}]}]}``; EF in percent.
    """
    items = list(rows_or_volumes)
    is_rows = bool(items) and "lv_diameters_mm" in items[0]
    volumes = patient_volumes(items, "pred") if is_rows else items
    if references is None:
        if not is_rows:
            raise ValueError("references are required when volumes (not rows) are given")
        ref_vols = {
            (v["model"], v["output"], v["patient_id"]): v for v in patient_volumes(items, "ref")
        }
        kind = "reference masks"
    else:
        kind = "given"
    groups: dict[tuple[str, str], list[dict]] = {}
    for v in volumes:
        model, output = str(v.get("model") or ""), str(v.get("output") or "")
        pid = v.get("patient_id")
        if references is None:
            ref = ref_vols[(model, output, pid)]
        else:
            ref = references.get(pid, {})
        groups.setdefault((model, output), []).append(
            {
                "patient_id": pid,
                "EDV": float(v["EDV"]),
                "ESV": float(v["ESV"]),
                "EF": float(v["EF"]),
                "ref_EDV": _reference_value(ref, "EDV"),
                "ref_ESV": _reference_value(ref, "ESV"),
                "ref_EF": _reference_value(ref, "EF"),
            }
        )
    out = []
    for (model, output), patients in groups.items():
        entry = {"model": model, "output": output, "n_patients": len(patients)}
        for index in ("EDV", "ESV", "EF"):
            entry[index] = _agreement(
                [p[index] for p in patients], [p[f"ref_{index}"] for p in patients]
            )
        entry["patients"] = patients
        out.append(entry)
    return {"reference": kind, "groups": out}
